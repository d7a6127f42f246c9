"""What of the metadata log a caller that is not a node may see.

Brokers follow the whole log (they authorize and throttle from its ACLs and quotas, and check
tokens against its credentials). A client may follow it too (to learn of leader moves early),
but ACLs, stored credentials (salts and keys) and quotas are none of its business: those
records are left out of what it receives. The events keep their indexes, so a client resumes
where it was as before.
"""

from __future__ import annotations

from collections.abc import Iterable

from raftka.common.metadata.security_image import SECURITY_RECORD_KINDS
from raftka.v1 import controller_pb2 as pb
from raftka.v1.metadata_pb2 import MetadataRecord


def _visible(records: Iterable[MetadataRecord]) -> list[MetadataRecord]:
    return [r for r in records if r.WhichOneof("record") not in SECURITY_RECORD_KINDS]


def without_security_records(event: pb.MetadataEvent) -> pb.MetadataEvent:
    """``event`` without ACL, credential and quota records (a new message when it had any:
    the feed's events are shared by every watcher and must not change)."""
    kind = event.WhichOneof("event")
    if kind == "delta":
        kept = _visible(event.delta.records)
        if len(kept) == len(event.delta.records):
            return event
        return pb.MetadataEvent(delta=pb.MetadataDelta(index=event.delta.index, records=kept))
    if kind == "snapshot":
        chunk = event.snapshot
        kept = _visible(chunk.records)
        if len(kept) == len(chunk.records):
            return event
        return pb.MetadataEvent(
            snapshot=pb.SnapshotChunk(
                last_index=chunk.last_index, records=kept, first=chunk.first, last=chunk.last
            )
        )
    return event
