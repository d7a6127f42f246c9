"""Errors raised while replaying the metadata log.

A record that cannot be applied (a partition of an unknown topic, a change for a broker epoch
that is not the registered one, ...) means the log or the code that wrote it is wrong. Replay
never skips such a record: it raises, and the process must stop applying the log.
"""

from __future__ import annotations

from raftka.common.errors import RaftkaError


class MetadataReplayError(RaftkaError):
    """A metadata record is inconsistent with the image it is applied to.

    After this error the image may hold part of the failed batch and must be discarded.
    """
