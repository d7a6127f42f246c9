"""Response frames with holes for file regions: the records of a zero-copy Fetch answer.

kio encodes a response into one buffer, so the records cannot be passed to it as file
regions. Instead each region's records field is given a marker (a random token per answer
and the region's number), the response is encoded as usual, and the frame is cut at each
marker: the bytes before it end with the records field's length prefix, which is rewritten
for the region's length (an int32 before flexible versions, an unsigned varint of length + 1,
the compact form, in them). The answer is then a list of parts, bytes and regions, whose
concatenation is byte for byte the frame kio would have encoded with the records in place;
the size prefix counts the regions. Work is O(1) per region, not per byte of records.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from raftka.broker.kafka.framing import SIZE, encode_response
from raftka.common.storage.region import FileRegion

Part = bytes | FileRegion
Answer = bytes | list[Part]
"""What a connection sends for one request: one frame, or a frame in parts."""

_TOKEN_BYTES = 16
_INT32 = struct.Struct(">i")


@dataclass(slots=True)
class WithRegions:
    """A response entity whose records fields hold :meth:`marker` s for ``regions``."""

    response: Any
    token: bytes = field(default_factory=lambda: os.urandom(_TOKEN_BYTES))
    regions: list[FileRegion] = field(default_factory=list)

    def add(self, region: FileRegion) -> bytes:
        """The marker to put in the records field that ``region`` fills."""
        self.regions.append(region)
        return self.marker(len(self.regions) - 1)

    def marker(self, index: int) -> bytes:
        return self.token + _INT32.pack(index)

    def close(self) -> None:
        for region in self.regions:
            region.close()


def _length_prefix(length: int, flexible: bool) -> bytes:
    if not flexible:
        return _INT32.pack(length)
    value = length + 1  # compact nullable bytes: 0 is null
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_with_regions(correlation_id: int, answer: WithRegions) -> list[Part]:
    """The size-prefixed frame of ``answer.response`` with each marker replaced by its
    region, as parts. ValueError when a marker is not where its records field is (it
    cannot happen unless the encoder changes: the marker is random per answer)."""
    if not answer.regions:
        return [encode_response(correlation_id, answer.response)]
    flexible = bool(getattr(type(answer.response), "__flexible__", False))
    frame = encode_response(correlation_id, answer.response)
    parts: list[Part] = []
    cursor = SIZE.size
    total = 0
    for index, region in enumerate(answer.regions):
        marker = answer.marker(index)
        old_prefix = _length_prefix(len(marker), flexible)
        at = frame.find(marker, cursor)
        start = at - len(old_prefix)
        if at < 0 or start < cursor or frame[start:at] != old_prefix:
            raise ValueError(f"the records marker of region {index} is not in the frame")
        head = frame[cursor:start] + _length_prefix(region.length, flexible)
        parts += (head, region)
        total += len(head) + region.length
        cursor = at + len(marker)
    tail = frame[cursor:]
    total += len(tail)
    first = parts[0]
    assert isinstance(first, bytes)
    parts[0] = SIZE.pack(total) + first
    parts.append(tail)
    return parts


def encode_answer(correlation_id: int, response: Any) -> Answer:
    """The frame of ``response``: in parts when it carries file regions."""
    if isinstance(response, WithRegions):
        return encode_with_regions(correlation_id, response)
    return encode_response(correlation_id, response)


def regions_of(answer: Answer | None) -> Sequence[FileRegion]:
    if isinstance(answer, list):
        return [part for part in answer if isinstance(part, FileRegion)]
    return ()
