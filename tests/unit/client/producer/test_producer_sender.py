"""The producer's accumulator and sender against an in-process fake cluster: batching and
linger, retries, and idempotent sequences that keep retries from duplicating or reordering."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import grpc
import pytest

from raftka.client.producer.accumulator import RecordAccumulator
from raftka.client.producer.buffer_pool import BufferPool
from raftka.client.producer.config import ProducerConfig
from raftka.client.producer.delivery import RecordDelivery
from raftka.client.producer.sender import DeliveryTimeoutError, Sender
from raftka.client.types import TopicPartition
from raftka.common.errors import RaftkaError
from raftka.v1 import broker_pb2 as pb
from raftka.v1.common_pb2 import ErrorCode
from tests.conditions import until
from tests.unit.client.fake_leaders import FakeLeaders

TP = TopicPartition("t", 0)


class Harness:
    def __init__(self, cluster: FakeLeaders, **settings: object) -> None:
        self.config = ProducerConfig(bootstrap_servers=["x:1"], **settings)  # type: ignore[arg-type]
        self.cluster = cluster
        self.acc = RecordAccumulator(self.config, BufferPool(self.config.buffer_memory))
        self.sender = Sender(
            self.config,
            self.acc,
            cluster,
            cluster.produce_for,
            cluster.init_producer_id if self.config.idempotent else None,
        )
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Harness:
        self.task = asyncio.create_task(self.sender.run())
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.acc.closing = True
        self.acc.wakeup.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 30)
        await self.sender.stop()

    async def send(self, tp: TopicPartition, value: bytes) -> RecordDelivery:
        return await self.acc.append(tp, 0, None, value, ())


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_records_are_acknowledged_with_their_offsets_in_few_requests() -> None:
    cluster = FakeLeaders()

    async def main() -> None:
        async with Harness(cluster, linger_ms=20) as h:
            futures = [await h.send(TP, b"v%d" % i) for i in range(50)]
            results = await asyncio.gather(*futures)
        assert [r.offset for r in results] == list(range(50))
        assert cluster.values("t", 0) == [b"v%d" % i for i in range(50)]
        assert cluster.requests <= 3, f"{cluster.requests} requests for 50 small records"

    run(main())


def test_a_full_batch_goes_without_waiting_for_linger() -> None:
    cluster = FakeLeaders()

    async def main() -> None:
        async with Harness(
            cluster,
            linger_ms=60_000,
            linger_when_idle=True,
            batch_size=1024,
            delivery_timeout_ms=120_000,
        ) as h:
            futures = [await h.send(TP, bytes(100)) for _ in range(30)]
            # Full batches are sent at once; the last, partial one waits for linger until close.
            # (asyncio.ensure_future gives a delivery back as it is: typed as a Future.)
            done, _ = await asyncio.wait(
                [asyncio.ensure_future(f) for f in futures[:20]], timeout=10
            )
            assert len(done) == 20
            assert not futures[-1].done(), "the partial batch lingers"

    run(main())


def test_linger_holds_a_partial_batch_until_it_expires() -> None:
    now = [0.0]
    cluster = FakeLeaders()
    config = ProducerConfig(bootstrap_servers=["x:1"], linger_ms=100)
    acc = RecordAccumulator(config, BufferPool(config.buffer_memory), clock=lambda: now[0])

    async def main() -> None:
        await acc.append(TP, 0, None, b"x", ())
        assert acc.ready(0.05)[0] == [] and acc.ready(0.05)[1] == pytest.approx(0.05)
        assert acc.ready(0.1)[0] == [TP]
        acc.flushing = 1
        assert acc.ready(0.0)[0] == [TP], "flush sends at once"

    run(main())
    assert cluster.requests == 0


def test_retriable_refusals_are_retried_after_a_metadata_refresh() -> None:
    cluster = FakeLeaders(random.Random(3), refuse=0.5)

    async def main() -> None:
        async with Harness(
            cluster, linger_ms=0, batch_size=64, retry_backoff_ms=1, retry_backoff_max_ms=5
        ) as h:  # small batches: many requests, so many chances to be refused
            results = await asyncio.gather(*[await h.send(TP, b"r%d" % i) for i in range(40)])
        assert sorted(r.offset for r in results) == list(range(40))
        assert cluster.refreshes > 0

    run(main())


def test_non_retriable_errors_fail_the_records_and_later_ones_still_go() -> None:
    cluster = FakeLeaders()

    async def main() -> None:
        async with Harness(cluster, enable_idempotence=False, acks=1, linger_ms=0) as h:
            cluster.leaders[("gone", 0)] = "leader-a"
            original = cluster.Produce

            async def refuse_gone(request, **call):  # type: ignore[no-untyped-def]
                if pb.ProduceRequest.FromString(request).topics[0].topic == "gone":
                    response = await original(request, **call)
                    response.results[0].error_code = ErrorCode.MESSAGE_TOO_LARGE  # not retriable
                    return response
                return await original(request, **call)

            cluster.Produce = refuse_gone  # type: ignore[method-assign,assignment]
            bad = await h.send(TopicPartition("gone", 0), b"big")
            with pytest.raises(RaftkaError, match="MESSAGE_TOO_LARGE"):
                await bad
            good = await h.send(TP, b"fine")
            assert (await good).offset == 0

    run(main())


def test_delivery_timeout_fails_records_whose_partition_has_no_leader() -> None:
    cluster = FakeLeaders()
    cluster.leaders[TP] = None

    async def main() -> None:
        async with Harness(
            cluster, linger_ms=0, request_timeout_ms=50, delivery_timeout_ms=200
        ) as h:
            future = await h.send(TP, b"stuck")
            with pytest.raises(DeliveryTimeoutError, match="delivery_timeout_ms") as failed:
                await asyncio.wait_for(future, 10)
        assert "never sent, so not written" in failed.value.message
        assert not failed.value.sent and not failed.value.maybe_written
        assert failed.value.attempts == 0

    run(main())


# A backoff longer than the delivery timeout: after its first attempt the batch waits in the
# queue for a retry that never comes, and expires there (the sender's _expire).
WAITS_FOR_A_RETRY = {
    "linger_ms": 0,
    "request_timeout_ms": 50,
    "delivery_timeout_ms": 200,
    "retry_backoff_ms": 60_000,
    "retry_backoff_max_ms": 60_000,
}


def test_records_that_expire_in_the_queue_after_a_lost_answer_may_have_been_written() -> None:
    """The answer to the one attempt is lost after the broker wrote the records: they expire in
    the queue, waiting for a retry, and the error must not say they were never sent."""
    cluster = FakeLeaders(lose_answer=1.0)

    async def main() -> None:
        async with Harness(cluster, **WAITS_FOR_A_RETRY) as h:
            future = await h.send(TP, b"written")
            with pytest.raises(DeliveryTimeoutError) as failed:
                await asyncio.wait_for(future, 10)
        error = failed.value
        assert error.sent and error.attempts == 1 and error.maybe_written
        assert "outcome unknown, they may have been written" in error.message
        assert "sent 1 time(s)" in error.message and "connection reset" in error.message
        assert "never sent" not in error.message and "expired in the producer's queue" not in (
            error.message
        )
        assert error.retriable and isinstance(error, RaftkaError)

    run(main())
    assert cluster.values("t", 0) == [b"written"], "the broker does hold the record"


def test_records_refused_at_every_attempt_expire_as_not_written() -> None:
    cluster = FakeLeaders(refuse=1.0)  # NOT_LEADER_OR_FOLLOWER: a clear refusal, nothing written

    async def main() -> None:
        async with Harness(cluster, **WAITS_FOR_A_RETRY) as h:
            future = await h.send(TP, b"refused")
            with pytest.raises(DeliveryTimeoutError) as failed:
                await asyncio.wait_for(future, 10)
        error = failed.value
        assert error.sent and not error.maybe_written
        assert "refused each time, so not written" in error.message
        assert "NOT_LEADER_OR_FOLLOWER" in error.message

    run(main())
    assert cluster.values("t", 0) == []


def test_an_answer_lost_after_the_delivery_timeout_fails_the_records_as_maybe_written() -> None:
    """The attempt itself outlives delivery_timeout_ms (the sender's _attempt_failed path)."""
    cluster = FakeLeaders()
    original = cluster.Produce
    answer = asyncio.Event()

    async def slow_then_lost(request, **call):  # type: ignore[no-untyped-def]
        await original(request, **call)  # written ...
        await answer.wait()  # ... and the answer is held until the records expired
        raise grpc.aio.AioRpcError(
            grpc.StatusCode.DEADLINE_EXCEEDED, grpc.aio.Metadata(), grpc.aio.Metadata(), "late"
        )

    cluster.Produce = slow_then_lost  # type: ignore[method-assign,assignment]
    now = [0.0]

    async def main() -> None:
        h = Harness(cluster, linger_ms=0, request_timeout_ms=50, delivery_timeout_ms=200)
        h.sender._clock = lambda: now[0]
        h.acc._clock = lambda: now[0]
        async with h:
            future = await h.send(TP, b"late")
            await until(lambda: cluster.requests == 1, what="the first attempt")
            now[0] = 1.0  # past delivery_timeout_ms while the attempt is in flight
            answer.set()
            with pytest.raises(DeliveryTimeoutError) as failed:
                await asyncio.wait_for(future, 10)
        assert failed.value.maybe_written and failed.value.attempts == 1
        assert "may have been written" in failed.value.message

    run(main())
    assert cluster.values("t", 0) == [b"late"]


@pytest.mark.parametrize("seed", range(25))
def test_idempotent_retries_never_duplicate_or_reorder(seed: int) -> None:
    """Answers are lost after the write, requests are refused and answered out of order, with
    five requests in flight: every record still lands exactly once, in send order."""
    cluster = FakeLeaders(random.Random(seed), refuse=0.15, lose_answer=0.2, max_delay_s=0.003)
    tps = [TopicPartition("t", p) for p in range(3)]

    async def main() -> None:
        async with Harness(
            cluster,
            linger_ms=0,
            batch_size=200,
            retry_backoff_ms=1,
            retry_backoff_max_ms=4,
        ) as h:
            futures = []
            for i in range(300):
                tp = tps[i % 3]
                futures.append(await h.send(tp, b"%d:%05d" % (tp.partition, i)))
                if i % 17 == 0:
                    await asyncio.sleep(0)
            results = await asyncio.gather(*futures)
        for tp in tps:
            sent = [b"%d:%05d" % (tp.partition, i) for i in range(300) if i % 3 == tp.partition]
            assert cluster.values(tp.topic, tp.partition) == sent, f"{tp} differs (seed {seed})"
        for i, r in enumerate(results):
            assert cluster.values("t", r.partition)[r.offset] == b"%d:%05d" % (r.partition, i)
        assert len(cluster.unreachable) == cluster.lost_answers + h.sender.stalls_seen, (
            "each lost answer (and each request stalled past a second) marks its broker for "
            "the metadata cache"
        )

    run(main())


def test_without_idempotence_lost_answers_can_duplicate() -> None:
    """The reason idempotence is on by default: the same faults, without it, write twice."""
    cluster = FakeLeaders(random.Random(1), lose_answer=0.3)

    async def main() -> None:
        async with Harness(
            cluster,
            enable_idempotence=False,
            linger_ms=0,
            batch_size=20,  # a batch, and so a request, per record
            retry_backoff_ms=1,
            retry_backoff_max_ms=2,
        ) as h:
            await asyncio.gather(*[await h.send(TP, b"d%d" % i) for i in range(100)])

    run(main())
    values = cluster.values("t", 0)
    assert len(values) > len(set(values)) == 100


def test_a_definite_failure_renumbers_under_a_new_producer_id() -> None:
    cluster = FakeLeaders()

    async def main() -> None:
        async with Harness(cluster, linger_ms=0) as h:
            first = await h.send(TP, b"a")
            await first
            pid = h.sender.sequences.producer_id  # type: ignore[union-attr]
            # The broker loses the producer's state (as after a leader change without it).
            cluster.partitions[("t", 0)].producers.clear()
            second = await h.send(TP, b"b")
            with pytest.raises(RaftkaError, match="OUT_OF_ORDER_SEQUENCE_NUMBER"):
                await second
            third = await h.send(TP, b"c")
            assert (await third).offset == 1
            assert h.sender.sequences.producer_id != pid  # type: ignore[union-attr]

    run(main())
    assert cluster.values("t", 0) == [b"a", b"c"]


def test_a_lone_record_goes_at_once_when_its_leader_is_idle_and_lingers_behind_a_request() -> None:
    config = ProducerConfig(bootstrap_servers=["x:1"], linger_ms=100)
    acc = RecordAccumulator(config, BufferPool(config.buffer_memory), clock=lambda: 0.0)
    busy = {TP: False}

    async def main() -> None:
        await acc.append(TP, 0, None, b"x", ())
        assert acc.ready(0.0, busy.__getitem__)[0] == [], "in flight: it lingers"
        busy[TP] = True
        assert acc.ready(0.0, busy.__getitem__)[0] == [TP], "idle: at once"
        assert acc.ready(0.0)[0] == [], "linger_when_idle: no idle rule"

    run(main())


class FrozenLeader:
    """Stubs by address: "leader-a" takes Produce requests and never answers (SIGSTOPped)."""

    def __init__(self, cluster: FakeLeaders) -> None:
        self.cluster = cluster
        self.held = 0

    def produce_for(self, address: str) -> Any:
        return self.Produce if address == "leader-a" else self.cluster.Produce

    async def Produce(self, request: object, **_call: object) -> object:
        self.held += 1
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def test_batches_held_by_a_frozen_leader_move_to_the_new_leader_with_their_sequences() -> None:
    cluster = FakeLeaders()
    frozen = FrozenLeader(cluster)
    skew = [0.0]

    def clock() -> float:  # real time, plus a jump past the stall threshold
        return time.monotonic() + skew[0]

    async def main() -> None:
        config = ProducerConfig(bootstrap_servers=["x:1"], linger_ms=0, batch_size=100)
        acc = RecordAccumulator(config, BufferPool(config.buffer_memory), clock=clock)
        sender = Sender(config, acc, cluster, frozen.produce_for, cluster.init_producer_id, clock)
        task = asyncio.create_task(sender.run())
        deliveries = [await acc.append(TP, 0, None, b"v%d" % i, ()) for i in range(12)]
        await until(lambda: frozen.held >= 2, what="requests held by the frozen leader")
        assert not any(d.done() for d in deliveries)
        cluster.leaders[TP], cluster.epochs[TP] = "leader-b", 1  # the controller moved it
        skew[0] = 1.5  # the requests have waited past STALL_AFTER_S
        acc.wakeup.set()
        results = await asyncio.wait_for(asyncio.gather(*deliveries), 10)
        assert [r.offset for r in results] == list(range(12))
        assert cluster.values("t", 0) == [b"v%d" % i for i in range(12)], "once each, in order"
        assert "leader-a" in cluster.unreachable and cluster.refreshes >= 1
        assert sender.requests_in_flight == 0, "abandoned requests are out of flight"
        acc.closing = True
        acc.wakeup.set()
        await asyncio.wait_for(task, 10)
        await sender.stop()

    run(main())
