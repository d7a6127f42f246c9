"""What a control manager hands back: the records to propose and the answer to give."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from raftka.v1.metadata_pb2 import MetadataBatch, MetadataRecord

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ControllerResult(Generic[T]):
    """``records`` must be proposed as one Raft entry (one MetadataBatch) and ``response``
    given only after that entry commits. Empty ``records`` means nothing to write: the
    response may be sent at once (after any earlier proposals it read have committed)."""

    records: tuple[MetadataRecord, ...]
    response: T

    def batch(self) -> MetadataBatch:
        return MetadataBatch(records=self.records)
