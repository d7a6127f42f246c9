"""Completing decisions, timeouts, id expiry, loading and describing."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from raftka.broker.transactions.records import TxnRecord, encode
from raftka.broker.transactions.state import TransactionMetadata, TxnState
from raftka.v1 import transactions_pb2 as tpb
from raftka.v1.common_pb2 import ErrorCode

from .support import COORDINATOR_EPOCH, TxnHarness


def test_a_stale_or_repeated_job_writes_nothing(h: TxnHarness) -> None:
    pid = h.begun().producer_id
    (job,) = h.end(pid, 0, True).markers
    for stale in (
        dataclasses.replace(job, producer_epoch=0),
        dataclasses.replace(job, committed=False),
        dataclasses.replace(job, coordinator_epoch=COORDINATOR_EPOCH - 1),
        dataclasses.replace(job, transactional_id="other"),
    ):
        assert not h.finish(stale).records
    assert h.meta().state is TxnState.PREPARE_COMMIT
    assert len(h.finish(job).records) == 1
    assert not h.finish(job).records  # a duplicate report
    assert h.meta().state is TxnState.COMPLETE_COMMIT


def test_a_transaction_past_its_timeout_is_aborted_with_a_bumped_epoch(h: TxnHarness) -> None:
    pid = h.init(timeout_ms=5_000).response.producer_id
    h.add(pid, 0, ("a", 0))
    assert h.shard.next_deadline_ms() == h.now_ms + 5_000
    h.now_ms += 4_999
    assert not h.tick().records
    h.now_ms += 1
    outcome = h.tick()
    (job,) = outcome.markers
    assert (job.producer_id, job.producer_epoch, job.committed) == (pid, 1, False)
    assert h.meta().state is TxnState.PREPARE_ABORT
    assert not h.tick().records  # deciding: neither timed out again nor expired
    h.finish(job)
    assert h.meta().state is TxnState.COMPLETE_ABORT


def test_an_idle_id_expires_and_comes_back_new(h: TxnHarness) -> None:
    pid = h.init().response.producer_id
    assert h.shard.next_deadline_ms() == h.now_ms + h.config.id_expiration_ms
    h.now_ms += h.config.id_expiration_ms
    outcome = h.tick()
    assert [r.value for r in outcome.records] == [None]
    assert h.shard.transactional_ids() == [] and h.shard.next_deadline_ms() is None
    assert h.shard.describe("t").error_code == ErrorCode.TRANSACTIONAL_ID_NOT_FOUND
    assert h.init().response.producer_id != pid


def test_an_ongoing_transaction_does_not_expire_the_id(h: TxnHarness) -> None:
    h.init(timeout_ms=h.config.max_timeout_ms)
    h.add(5_000, 0)
    h.now_ms += h.config.max_timeout_ms - 1
    assert not h.tick().records


def test_loading_resumes_every_decision_under_the_new_coordinator_epoch(h: TxnHarness) -> None:
    a = h.begun("a", ("x", 0)).producer_id
    b = h.begun("b", ("y", 0), ("y", 1)).producer_id
    h.begun("c")
    h.end(a, 0, True, tid="a")
    h.end(b, 0, False, tid="b")
    shard = h.replayed(coordinator_epoch=COORDINATOR_EPOCH + 1)
    jobs = shard.loaded(h.now_ms)
    assert [(j.transactional_id, j.committed, j.coordinator_epoch) for j in jobs] == [
        ("a", True, COORDINATOR_EPOCH + 1),
        ("b", False, COORDINATOR_EPOCH + 1),
    ]
    assert jobs[1].partitions == {("y", 0), ("y", 1)}
    # The old coordinator's report is stale there; the new one's completes.
    assert not shard.markers_written(h.jobs[-1], now_ms=h.now_ms).records
    assert shard.markers_written(jobs[1], now_ms=h.now_ms).records
    assert shard.store.ids["b"].state is TxnState.COMPLETE_ABORT


def test_a_replayed_epoch_fence_is_finished_as_an_abort(h: TxnHarness) -> None:
    h.seed(
        "t",
        TransactionMetadata(
            9, 4, TxnState.PREPARE_EPOCH_FENCE, 1_000, partitions=frozenset({("a", 0)})
        ),
    )
    (job,) = h.shard.loaded(h.now_ms)
    assert not job.committed and job.producer_epoch == 4
    h.finish(job)
    assert h.meta().state is TxnState.COMPLETE_ABORT


def test_describe_and_list(h: TxnHarness) -> None:
    pid = h.init("t", timeout_ms=7_000).response.producer_id
    h.add(pid, 0, ("b", 1), ("a", 2), ("a", 0), tid="t")
    h.init("u")
    d = h.shard.describe("t")
    assert (d.state, d.producer_id, d.producer_epoch) == ("Ongoing", pid, 0)
    assert d.transaction_timeout_ms == 7_000 and d.transaction_start_time_ms == h.now_ms
    assert [(t.topic, list(t.partitions)) for t in d.topics] == [("a", [0, 2]), ("b", [1])]
    assert h.shard.describe("u").transaction_start_time_ms == -1
    listed = h.shard.list_transactions(tpb.ListTransactionsRequest())
    assert [(x.transactional_id, x.state) for x in listed] == [("t", "Ongoing"), ("u", "Empty")]
    only = h.shard.list_transactions(tpb.ListTransactionsRequest(state_filters=["Empty"]))
    assert [x.transactional_id for x in only] == ["u"]
    by_pid = h.shard.list_transactions(tpb.ListTransactionsRequest(producer_id_filters=[pid]))
    assert [x.transactional_id for x in by_pid] == ["t"]
    none = h.shard.list_transactions(tpb.ListTransactionsRequest(state_filters=["Bogus"]))
    assert none == []
    missing = h.shard.describe("zz")
    assert missing.error_code == ErrorCode.TRANSACTIONAL_ID_NOT_FOUND
    assert (missing.producer_id, missing.producer_epoch) == (-1, -1)


def test_every_write_replays_to_the_same_state(h: TxnHarness) -> None:
    """A whole life (the fixture checks the replay at the end too): replay after each step."""
    pid = h.init().response.producer_id
    steps: list[Callable[[], object]] = [
        lambda: h.add(pid, 0, ("a", 0)),
        lambda: h.add(pid, 0, ("a", 1)),
        lambda: h.end(pid, 0, True),
        lambda: h.finish(h.jobs[-1]),
        lambda: h.end(pid, 1, False),
        lambda: h.add(pid, 2, ("b", 0)),
        lambda: h.init(),
        lambda: h.finish(h.jobs[-1]),
        lambda: h.init(),
    ]
    for step in steps:
        step()
        h.assert_replay_equal()
    assert h.meta().producer_epoch == 4
    # The last record of each key alone (what compaction keeps) gives the same state too.
    latest = {r.key: r for r in h.log}
    shard = h.replayed()
    shard.store.ids.clear()
    for record in latest.values():
        shard.replay(record)
    assert shard.store.ids == h.shard.store.ids
    assert encode(TxnRecord("t", h.meta())) == h.log[-1]
