"""Producer cost per record and low-rate latency, on one local cluster.

    .venv/bin/python scripts/bench_producer.py --records 60000 --runs 3
    .venv/bin/python scripts/bench_producer.py --baseline-python /work/main/.venv/bin/python
    .venv/bin/python scripts/bench_producer.py --cases send --profile /tmp/producer-profile

Starts 3 controllers + 3 brokers (default settings) on 127.0.0.1 and creates one topic per
case and run (3 partitions, replication factor 3, min.insync.replicas 2). Each case runs in a
fresh producer process with DEFAULT producer settings (idempotent, acks=all), 1 KiB records:

- ``max``: ``--records`` records as fast as the producer goes; prints records/s and the
  producer process's CPU per acknowledged record (``time.process_time()``, every thread of
  the process, from the first send to the last acknowledgement, divided by the records);
- ``rate``: ``--rate`` records/s for ``--seconds``; prints the send-to-acknowledgement latency
  p50 / p99 and the CPU per record.

The sending API of a case: ``send`` (``await producer.send()``, a callback on each delivery),
``nowait`` (``producer.send_nowait()``), ``many`` (``producer.send_many()`` of 1,000 records).
``--baseline-python`` also runs the ``send`` cases with another checkout's interpreter (say
main's .venv), interleaved with these, so before and after are measured side by side on the
same cluster. ``--profile DIR`` runs each worker under py-spy (``pip install py-spy``) and
writes a flame graph per case. Cases run interleaved ``--runs`` times; medians are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

WORKER_TIMEOUT_S = 600


# ---------------------------------------------------------------------------- the worker
# Runs in its own process (maybe another checkout's interpreter): uses only raftka's public
# producer API, and only what exists in it (send_nowait / send_many are looked up).


async def _work(spec: dict[str, Any]) -> dict[str, Any]:
    import gc

    from raftka.client import AsyncProducer

    payload = os.urandom(spec["record_size"])
    latencies: list[float] = []
    failures: list[BaseException] = []
    monotonic = time.monotonic

    def acknowledged(sent_at: float) -> Any:
        def done(future: Any) -> None:
            if future.cancelled() or future.exception() is not None:
                failures.append(future.exception() or asyncio.CancelledError())
            else:
                latencies.append(monotonic() - sent_at)

        return done

    settings: dict[str, Any] = {"linger_when_idle": True} if spec["variant"] == "linger" else {}
    async with AsyncProducer(bootstrap_servers=spec["servers"], **settings) as producer:
        topic = spec["topic"]
        await producer.partitions_for(topic)
        await (await producer.send(topic, b"warm-up"))  # producer id and connections
        if spec["variant"] == "gc":  # the recipe of docs/client.md
            gc.freeze()
            gc.set_threshold(10_000, 20, 20)
        gc_before = sum(s["collections"] for s in gc.get_stats())
        gc_time = [0.0, 0.0]  # total, started at

        def timed_gc(phase: str, _info: dict[str, int]) -> None:
            if phase == "start":
                gc_time[1] = time.thread_time()
            else:
                gc_time[0] += time.thread_time() - gc_time[1]

        gc.callbacks.append(timed_gc)
        api, mode, records = spec["api"], spec["mode"], spec["records"]
        track = spec["variant"] != "plain" or mode == "rate"
        rate = spec["rate"] if mode == "rate" else 0
        cpu0, wall0 = time.process_time(), monotonic()
        if api == "many":
            chunk = 1000
            sent = 0
            while sent < records:
                n = min(chunk, records - sent)
                if rate:
                    ahead = wall0 + sent / rate - monotonic()
                    if ahead > 0:
                        await asyncio.sleep(ahead)
                group = await producer.send_many(topic, [payload] * n)
                if track:
                    group.add_done_callback(acknowledged(monotonic()))
                sent += n
        else:
            nowait = getattr(producer, "send_nowait", None) if api == "nowait" else None
            for i in range(records):
                if rate:
                    ahead = wall0 + i / rate - monotonic()
                    if ahead > 0:
                        await asyncio.sleep(ahead)
                handle = nowait(topic, payload) if nowait is not None else None
                if handle is None:  # (send_nowait: None when send() would wait)
                    handle = await producer.send(topic, payload)
                if track:
                    handle.add_done_callback(acknowledged(monotonic()))
                if i % 1000 == 999:
                    await asyncio.sleep(0)  # as a real application would, now and then
        await producer.flush()
        cpu, wall = time.process_time() - cpu0, monotonic() - wall0
        gc_runs = sum(s["collections"] for s in gc.get_stats()) - gc_before
        gc.callbacks.remove(timed_gc)
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {
        "records": records,
        "failures": len(failures),
        "records_s": records / wall,
        "cpu_us": cpu / records * 1e6,
        "p50_ms": pct(0.50) if latencies else float("nan"),
        "p99_ms": pct(0.99) if latencies else float("nan"),
        "gc_runs": gc_runs,
        "gc_share": gc_time[0] / cpu if cpu else 0.0,
    }


def worker(spec_json: str) -> None:
    spec = json.loads(spec_json)
    result = asyncio.run(_work(spec))
    print(json.dumps(result), flush=True)


# ---------------------------------------------------------------------------- the driver


def _run_case(python: str, spec: dict[str, Any], profile: Path | None) -> dict[str, Any]:
    command = [python, str(Path(__file__).resolve()), "worker", json.dumps(spec)]
    if profile is not None:
        py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
        command = [py_spy, "record", "-r", "250", "-f", "raw", "-o", str(profile), "--", *command]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S, check=False
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"worker {spec} failed: {result.stderr.strip()[-1500:]}")
    figures: dict[str, Any] = json.loads(lines[-1])
    return figures


async def _create_topics(bootstrap: list[str], names: list[str], brokers: int) -> None:
    from raftka.client.admin import AsyncAdmin

    async with AsyncAdmin(bootstrap, timeout_s=60) as admin:
        deadline = time.monotonic() + 180  # a loaded machine starts a cluster slowly
        while True:  # every broker registered and unfenced
            found = (await admin.describe_cluster()).brokers
            if len([b for b in found if not b.fenced]) == brokers:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(found)} of {brokers} brokers unfenced after 180 s")
            await asyncio.sleep(0.1)
        for name in names:
            await admin.create_topic(name, 3, 3, configs={"min.insync.replicas": "2"})


def _profile_summary(path: Path, top: int = 14) -> str:
    """The functions with the most samples of their own, and a few totals, from py-spy's raw
    (collapsed stack) output."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = [f.split(" (")[0] for f in stack.split(";")]
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
    lines = [f"  profile {path} ({total} samples), own time:"]
    for name, count in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"    {100 * count / total:5.1f}%  {name}")
    lines.append("  inclusive:")
    for name, count in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"    {100 * count / total:5.1f}%  {name}")
    return "\n".join(lines)


def _line(f: dict[str, Any]) -> str:
    return (
        f"{f['records_s']:>9,.0f} records/s  cpu {f['cpu_us']:6.1f} us/record  "
        f"p50 {f['p50_ms']:7.2f} ms  p99 {f['p99_ms']:7.2f} ms  "
        f"gc {f['gc_runs']:>5} runs {100 * f['gc_share']:4.1f}% of cpu"
        + (f"  FAILED {f['failures']}" if f["failures"] else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=60_000, help="records of a max case")
    parser.add_argument("--record-size", type=int, default=1024)
    parser.add_argument("--rate", type=int, default=2000, help="records/s of a rate case")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of a rate case")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--cases",
        default="send,nowait,many,send-rate",
        help="comma-separated API-VARIANT names: API send, nowait or many; VARIANT none (as "
        "fast as it goes), rate (at --rate), gc (gc.freeze() and gc.set_threshold(10_000, 20, "
        "20) after start-up), linger (linger_when_idle=True), linger+rate is 'linger_rate', "
        "plain (no callback per record: deliveries dropped, one flush at the end, as "
        "bench_compare's replicated case)",
    )
    parser.add_argument("--baseline-python", help="also run the send cases with this python")
    parser.add_argument("--profile", type=Path, help="py-spy flame graphs into this directory")
    args = parser.parse_args()
    cases: list[tuple[str, str, dict[str, Any]]] = []
    pythons = [("", sys.executable)]
    if args.baseline_python:
        pythons.append(("baseline ", args.baseline_python))
    for name in args.cases.split(","):
        api, _, variant = name.partition("-")
        mode = "rate" if variant.endswith("rate") else "max"
        variant = variant.removesuffix("_rate").removesuffix("rate")
        for label, python in pythons:
            if label and (api != "send" or variant == "linger"):
                continue
            spec = {"api": api, "mode": mode, "variant": variant}
            cases.append((label + name, python, spec))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from raftka.ops.local_cluster import LocalCluster, stop_clusters_on_sigterm

    stop_clusters_on_sigterm()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cluster = LocalCluster(Path(tmp), controllers=3, brokers=3, log_level="warning")
        cluster.prepare()
        cluster.start()
        try:
            topics = [f"bench-{run}-{i}" for run in range(args.runs) for i in range(len(cases))]
            asyncio.run(_create_topics(cluster.bootstrap, topics, len(cluster.brokers)))
            print(f"command: {' '.join(sys.argv)}", flush=True)
            results: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in cases}
            for run in range(args.runs):
                for i, (name, python, spec) in enumerate(cases):
                    records = args.records
                    if spec["mode"] == "rate":
                        records = int(args.rate * args.seconds)
                    full = {
                        **spec,
                        "servers": cluster.bootstrap_servers,
                        "topic": f"bench-{run}-{i}",
                        "records": records,
                        "record_size": args.record_size,
                        "rate": args.rate,
                    }
                    profile = None
                    if args.profile:
                        profile = args.profile / f"{name.replace(' ', '-')}-{run + 1}.txt"
                    figures = _run_case(python, full, profile)
                    results[name].append(figures)
                    print(f"run {run + 1} {name:>18}: {_line(figures)}", flush=True)
                    if profile is not None:
                        print(_profile_summary(profile), flush=True)
            print(
                f"\nmedians of {args.runs} runs, {args.record_size} B records, default producer "
                f"settings, 3 brokers, RF 3, min.insync.replicas 2, rate cases at {args.rate}/s:"
            )
            for name, runs in results.items():
                med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                print(f"  {name:>18}: {_line(med)}")
        finally:
            cluster.stop_all()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "worker":
        worker(sys.argv[2])
    else:
        main()
