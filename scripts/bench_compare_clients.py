"""The client side of scripts/bench_compare.py: one worker process per client, for Raftka, NATS
JetStream and Redis Streams, all driven from Python the same way.

    python scripts/bench_compare_clients.py '{"kind": "raftka_produce", ...}'

A worker connects and prepares, prints ``READY``, waits for a line on stdin (so the parent can
read the servers' CPU counters right before the measured part), runs for ``seconds`` (or until
``max_records``), and prints one JSON line: records, bytes, elapsed seconds, its own CPU
seconds (getrusage) and, where it measured them, latency percentiles.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

Spec = dict[str, Any]
Result = dict[str, Any]


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentiles(latencies: list[float]) -> dict[str, float]:
    """p50 and p99 in milliseconds (empty for fewer than two samples)."""
    if len(latencies) < 2:
        return {}
    q = statistics.quantiles(latencies, n=100)
    return {"p50_ms": q[49] * 1e3, "p99_ms": q[98] * 1e3}


class Pacer:
    """Sleeps so that the i-th call happens at ``start + i / rate`` (no pacing for rate 0)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.start = time.monotonic()

    async def wait(self, i: int) -> None:
        if self.rate > 0:
            ahead = self.start + i / self.rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)


IDLE_S = 3.0
"""A consumer stops when nothing arrived for this long (all was read); the idle tail is not
counted in its elapsed time."""


async def ready() -> None:
    print("READY", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


# ----------------------------------------------------------------------------- Raftka


async def raftka_produce(spec: Spec) -> Result:
    from raftka.client.producer import AsyncProducer, ProducerConfig

    properties = {"bootstrap.servers": spec["servers"], **spec.get("properties", {})}
    payload = os.urandom(spec["size"])
    latencies: list[float] = []
    track = spec.get("rate", 0) > 0  # latency per record only when paced (it costs CPU)

    def acknowledged(sent_at: float) -> Callable[[asyncio.Future[Any]], None]:
        def done(future: asyncio.Future[Any]) -> None:
            if not future.cancelled() and future.exception() is None:
                latencies.append(time.perf_counter() - sent_at)

        return done

    async with AsyncProducer(ProducerConfig.from_properties(properties)) as producer:
        await producer.partitions_for(spec["topic"])
        await ready()
        cpu0, start = cpu_s(), time.monotonic()
        pacer, deadline, sent = Pacer(spec.get("rate", 0)), start + spec["seconds"], 0
        while time.monotonic() < deadline:
            for _ in range(100 if not track else 1):
                future = await producer.send(spec["topic"], payload)
                if track:
                    future.add_done_callback(acknowledged(time.perf_counter()))
                sent += 1
            await pacer.wait(sent)
        await producer.flush()
        elapsed = time.monotonic() - start
        cpu = cpu_s() - cpu0
    return {"records": sent, "bytes": sent * len(payload), "elapsed": elapsed, "cpu_s": cpu,
            **percentiles(latencies)}  # fmt: skip


async def raftka_consume(spec: Spec) -> Result:
    from raftka.client.consumer import AsyncConsumer
    from raftka.client.types import TopicPartition

    consumer = AsyncConsumer(bootstrap_servers=spec["servers"].split(","),
                             auto_offset_reset="earliest", **spec.get("settings", {}))  # fmt: skip
    async with consumer:
        consumer.assign([TopicPartition(spec["topic"], p) for p in range(spec["partitions"])])
        consumer.seek_to_beginning()
        await ready()
        cpu0, start = cpu_s(), time.monotonic()
        records = nbytes = 0
        deadline, last, cpu_last = start + spec["seconds"], start, cpu0
        while records < spec["max_records"] and time.monotonic() < deadline:
            batch = await consumer.poll(timeout_ms=500)
            if batch:
                records += len(batch)
                nbytes += sum(len(r.value or b"") for r in batch)
                last, cpu_last = time.monotonic(), cpu_s()
            elif time.monotonic() - last > IDLE_S:
                break  # everything there is was read
        elapsed = last - start
        cpu = cpu_last - cpu0
    return {"records": records, "bytes": nbytes, "elapsed": elapsed, "cpu_s": cpu}


# ----------------------------------------------------------------------------- NATS


async def nats_produce(spec: Spec) -> Result:
    import nats

    nc = await nats.connect(spec["urls"].split(","))
    js = nc.jetstream(publish_async_max_pending=spec["window"])
    payload = os.urandom(spec["size"])
    latencies: list[float] = []
    track = spec.get("rate", 0) > 0

    def acknowledged(sent_at: float) -> Callable[[asyncio.Future[Any]], None]:
        def done(future: asyncio.Future[Any]) -> None:
            if not future.cancelled() and future.exception() is None:
                latencies.append(time.perf_counter() - sent_at)

        return done

    try:
        for attempt in range(10):  # the stream is there and answers (slow on a busy machine)
            try:
                await js.publish(spec["subject"], payload, timeout=5)
                break
            except (nats.errors.TimeoutError, TimeoutError):
                if attempt == 9:
                    raise
        await ready()
        cpu0, start = cpu_s(), time.monotonic()
        pacer, deadline, sent = Pacer(spec.get("rate", 0)), start + spec["seconds"], 0
        while time.monotonic() < deadline:
            for _ in range(100 if not track else 1):
                future = await js.publish_async(spec["subject"], payload)
                if track:
                    future.add_done_callback(acknowledged(time.perf_counter()))
                sent += 1
            await pacer.wait(sent)
        await js.publish_async_completed()
        elapsed = time.monotonic() - start
        cpu = cpu_s() - cpu0
    finally:
        await nc.close()
    return {"records": sent, "bytes": sent * len(payload), "elapsed": elapsed, "cpu_s": cpu,
            **percentiles(latencies)}  # fmt: skip


async def nats_consume(spec: Spec) -> Result:
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    nc = await nats.connect(spec["urls"].split(","))
    try:
        js = nc.jetstream()
        config = ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL)
        sub = await js.pull_subscribe(spec["subject"], durable=None, config=config)
        await ready()
        cpu0, start = cpu_s(), time.monotonic()
        records = nbytes = 0
        deadline, last, cpu_last = start + spec["seconds"], start, cpu0
        while records < spec["max_records"] and time.monotonic() < deadline:
            try:
                msgs = await sub.fetch(batch=1000, timeout=0.5)
            except (nats.errors.TimeoutError, TimeoutError):  # (nats-py raises either)
                if time.monotonic() - last > IDLE_S:
                    break
                continue
            records += len(msgs)
            nbytes += sum(len(m.data) for m in msgs)
            last, cpu_last = time.monotonic(), cpu_s()
        elapsed = last - start
        cpu = cpu_last - cpu0
    finally:
        await nc.close()
    return {"records": records, "bytes": nbytes, "elapsed": elapsed, "cpu_s": cpu}


# ----------------------------------------------------------------------------- Redis


async def redis_produce(spec: Spec) -> Result:
    """redis-py's blocking client (with hiredis, the fastest way from Python): one pipeline
    of ``pipeline`` XADDs per round trip."""
    import redis

    client = redis.Redis(port=spec["port"])
    payload = os.urandom(spec["size"])
    try:
        client.ping()
        await ready()
        cpu0, start = cpu_s(), time.monotonic()
        deadline, sent = start + spec["seconds"], 0
        while time.monotonic() < deadline:
            pipe = client.pipeline(transaction=False)
            for _ in range(spec["pipeline"]):
                pipe.xadd(spec["key"], {b"v": payload})
            pipe.execute()
            sent += spec["pipeline"]
        elapsed = time.monotonic() - start
        cpu = cpu_s() - cpu0
    finally:
        client.close()
    return {"records": sent, "bytes": sent * len(payload), "elapsed": elapsed, "cpu_s": cpu}


async def redis_consume(spec: Spec) -> Result:
    import redis

    client = redis.Redis(port=spec["port"])
    try:
        client.ping()
        await ready()
        cpu0, start = cpu_s(), time.monotonic()
        records = nbytes = 0
        low: bytes | str = "-"
        deadline = start + spec["seconds"]
        while records < spec["max_records"] and time.monotonic() < deadline:
            entries: Any = client.xrange(spec["key"], min=low, max="+", count=1000)
            if not entries:
                break
            records += len(entries)
            nbytes += sum(len(fields[b"v"]) for _id, fields in entries)
            low = b"(" + entries[-1][0]
        elapsed = time.monotonic() - start
        cpu = cpu_s() - cpu0
    finally:
        client.close()
    return {"records": records, "bytes": nbytes, "elapsed": elapsed, "cpu_s": cpu}


def redis_fill(port: int, key: str, records: int, size: int) -> None:
    """Preload ``records`` entries of ``size`` bytes into stream ``key`` (not measured)."""
    import redis

    client = redis.Redis(port=port)
    payload = os.urandom(size)
    try:
        for done in range(0, records, 1000):
            pipe = client.pipeline(transaction=False)
            for _ in range(min(1000, records - done)):
                pipe.xadd(key, {b"v": payload})
            pipe.execute()
    finally:
        client.close()


WORKERS: dict[str, Callable[[Spec], Awaitable[Result]]] = {
    "raftka_produce": raftka_produce,
    "raftka_consume": raftka_consume,
    "nats_produce": nats_produce,
    "nats_consume": nats_consume,
    "redis_produce": redis_produce,
    "redis_consume": redis_consume,
}


async def _call(worker: Callable[[Spec], Awaitable[Result]], spec: Spec) -> Result:
    return await worker(spec)


def main() -> None:
    spec: Spec = json.loads(sys.argv[1])
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(_call(WORKERS[spec["kind"]], spec))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
