"""Bounds every node puts on what one request may ask for (trust nothing on the wire): a
request over a bound is refused with INVALID_REQUEST before any work is done."""

from __future__ import annotations

from raftka.common.errors import InvalidRequestError

MAX_ITEMS_PER_REQUEST = 10_000
"""Most items one request may name: topics, partitions or config resources (counted over the
whole request, e.g. every partition of every topic of a Fetch)."""


def require_items(items: int, field: str, *, empty_means_all: bool = False) -> None:
    """Every list in a request is bounded; most must also name something."""
    if items == 0 and not empty_means_all:
        raise InvalidRequestError(f"{field} is empty: name at least one")
    if items > MAX_ITEMS_PER_REQUEST:
        raise InvalidRequestError(
            f"{field} has {items} items; at most {MAX_ITEMS_PER_REQUEST} per request: split "
            "it into several requests"
        )
