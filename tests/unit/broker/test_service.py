"""The BrokerService's request-wide bounds, without a server."""

from __future__ import annotations

from raftka.broker.fetch_handler import (
    DEFAULT_FETCH_MAX_BYTES,
    MAX_FETCH_RESPONSE_BYTES,
    fetch_response_budget,
)


def test_the_fetch_response_budget_is_capped() -> None:
    assert fetch_response_budget(4096) == 4096
    assert fetch_response_budget(0) == fetch_response_budget(-5) == DEFAULT_FETCH_MAX_BYTES
    # A client cannot make one answer hold gigabytes (a 9.5 KB request once built 500 MiB).
    assert fetch_response_budget(2**31 - 1) == MAX_FETCH_RESPONSE_BYTES
    assert MAX_FETCH_RESPONSE_BYTES < 64 * 1024 * 1024  # under the gRPC message limit
