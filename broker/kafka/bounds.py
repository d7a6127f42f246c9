"""The bounds of Raftka's admin requests (raftka.common.limits) as a per-item answer: a Kafka
request over one gets INVALID_REQUEST in its results, never a dropped connection."""

from __future__ import annotations

from raftka.common.errors import InvalidRequestError
from raftka.common.limits import require_items


def items_refusal(count: int, field: str) -> InvalidRequestError | None:
    """INVALID_REQUEST for a request naming more items than any request may; else None."""
    try:
        require_items(count, field, empty_means_all=True)
    except InvalidRequestError as e:
        return e
    return None
