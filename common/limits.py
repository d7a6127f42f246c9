"""Bounds every node puts on what one request may ask for (trust nothing on the wire): a
request over a bound is refused with INVALID_REQUEST before any work is done."""

from __future__ import annotations

from raftka.common.errors import InvalidRequestError

MAX_ITEMS_PER_REQUEST = 10_000
"""Most items one request may name: topics, partitions or config resources (counted over the
whole request, e.g. every partition of every topic of a Fetch)."""

MAX_LISTING_REQUEST_BYTES = 3 * 1024 * 1024
"""Most bytes of a request that lists names (topics to describe, delete or elect leaders for,
partitions to look up): MAX_ITEMS_PER_REQUEST names of the longest topic name (249 bytes) fit.
Such a request is refused before it is parsed: parsing runs on the event loop, and a 64 MiB
message of 30 million empty names takes seconds to parse, whatever its item count then says."""

_V1 = "/raftka.v1."

REQUEST_BYTE_LIMITS: dict[str, int] = {
    _V1 + method: MAX_LISTING_REQUEST_BYTES
    for method in (
        "ControllerService/DescribeTopics",
        "ControllerService/DeleteTopics",
        "ControllerService/ElectLeaders",
        "ControllerService/ListPartitionReassignments",
        "BrokerService/Metadata",
        "BrokerService/ListOffsets",
    )
}
"""The gRPC methods whose requests are refused above a size before parsing, and that size
(every server enforces them: common/rpc/request_size.py)."""


def require_items(items: int, field: str, *, empty_means_all: bool = False) -> None:
    """Every list in a request is bounded; most must also name something."""
    if items == 0 and not empty_means_all:
        raise InvalidRequestError(f"{field} is empty: name at least one")
    if items > MAX_ITEMS_PER_REQUEST:
        raise InvalidRequestError(
            f"{field} has {items} items; at most {MAX_ITEMS_PER_REQUEST} per request: split "
            "it into several requests"
        )
