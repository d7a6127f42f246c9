"""TransactionShard is what the runtime drives: the TxnShard protocol (mypy checks the
assignment; the test checks the basics the runtime relies on)."""

from __future__ import annotations

from raftka.broker.transactions.api import TxnConfig, TxnShard
from raftka.broker.transactions.shard import TransactionShard


def test_the_shard_implements_the_protocol_and_keeps_its_coordinator_epoch() -> None:
    shard: TxnShard = TransactionShard(7, 12, TxnConfig())
    assert shard.coordinator_epoch == 12
    assert shard.loaded(0) == [] and shard.transactional_ids() == []
    assert shard.next_deadline_ms() is None
    assert not shard.tick(now_ms=0).records
