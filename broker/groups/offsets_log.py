"""The group coordinator's access to the ``__consumer_offsets`` partitions this broker hosts:
the generic :mod:`raftka.broker.coordinator.internal_log` on that topic."""

from __future__ import annotations

from raftka.broker.coordinator.internal_log import InternalLog, ReplicatedInternalLog
from raftka.broker.groups.placement import OFFSETS_TOPIC
from raftka.broker.replica_manager import ReplicaManager

__all__ = ["APPEND_TIMEOUT_S", "OffsetsLog", "ReplicatedOffsetsLog"]

APPEND_TIMEOUT_S = 10.0
"""How long a coordinator write waits for the ISR before it logs that it is still waiting (it
goes on waiting for the commit)."""

OffsetsLog = InternalLog


class ReplicatedOffsetsLog(ReplicatedInternalLog):
    """The replicated log of ``__consumer_offsets``."""

    def __init__(self, replicas: ReplicaManager) -> None:
        super().__init__(replicas, OFFSETS_TOPIC, append_timeout_s=APPEND_TIMEOUT_S)
