"""What a control manager hands back: the records to propose and the answer to give."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from raftka.v1.metadata_pb2 import MetadataBatch, MetadataRecord

T = TypeVar("T")

MAX_SLICE_RECORDS = 1000
"""Records per slice of a change that is written in slices (see ``ControllerResult.more``):
about 5 ms to plan and 5 ms to apply on this machine."""


@dataclass(frozen=True, slots=True)
class ControllerResult(Generic[T]):
    """``records`` must be proposed as one Raft entry (one MetadataBatch) and ``response``
    given only after that entry commits. Empty ``records`` means nothing to write: the
    response may be sent at once (after any earlier proposals it read have committed).

    ``more``: the records are one slice of a larger change (at most ``MAX_SLICE_RECORDS``,
    each slice a consistent state on its own): propose them, let the event loop run, and plan
    again against the image with them applied for the next slice; the last slice's response
    is the answer. A large change (fencing a broker with 100,000 replicas) thus never holds
    the controller's loop for long, and each Raft entry stays small."""

    records: tuple[MetadataRecord, ...]
    response: T
    more: bool = False

    def batch(self) -> MetadataBatch:
        return MetadataBatch(records=self.records)
