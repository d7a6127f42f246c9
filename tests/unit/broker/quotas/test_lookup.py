"""Which quota applies to a caller: Kafka's precedence, per quota key."""

from __future__ import annotations

import pytest

from raftka.broker.quotas.lookup import QuotaLookup
from raftka.common.security.model import QuotaEntityKey

KEY = "producer_byte_rate"
C, U = "client-id", "user"

# Every entity form, valued by its rank in Kafka's precedence (1 = most specific).
ALL: dict[QuotaEntityKey, float] = {
    ((C, "app"), (U, "alice")): 1,
    ((C, None), (U, "alice")): 2,
    ((U, "alice"),): 3,
    ((C, "app"), (U, None)): 4,
    ((C, None), (U, None)): 5,
    ((U, None),): 6,
    ((C, "app"),): 7,
    ((C, None),): 8,
}


def lookup(entities: dict[QuotaEntityKey, float]) -> QuotaLookup:
    return QuotaLookup(KEY, {e: {KEY: v} for e, v in entities.items()})


@pytest.mark.parametrize("rank", range(1, 9))
def test_the_most_specific_entity_wins(rank: int) -> None:
    remaining = {e: v for e, v in ALL.items() if v >= rank}
    found = lookup(remaining).find("alice", "app")
    assert found is not None and found.bound == rank


def test_the_measured_entity_names_the_caller_where_the_quota_has_defaults() -> None:
    found = lookup({((C, None), (U, None)): 5}).find("bob", "x")
    assert found is not None and found.measured == ("bob", "x")
    # A user-only quota: every client id of the user shares one rate.
    found = lookup({((U, "bob"),): 3}).find("bob", "x")
    assert found is not None and found.measured == ("bob", "")
    # A default-client-id quota: each client id gets its own rate, users ignored.
    found = lookup({((C, None),): 8}).find("bob", "x")
    assert found is not None and found.measured == ("", "x")


def test_other_names_and_other_keys_do_not_apply() -> None:
    quotas: dict[QuotaEntityKey, dict[str, float]] = {
        ((C, "app"),): {KEY: 10.0},
        ((U, "alice"),): {"consumer_byte_rate": 5.0},
    }
    assert QuotaLookup(KEY, quotas).find("alice", "other") is None
    assert QuotaLookup(KEY, quotas).find("bob", "app") is not None
    assert not QuotaLookup("request_percentage", quotas)
