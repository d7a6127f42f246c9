"""Raftka side by side with NATS JetStream (3 nodes, R3) and Redis Streams, on this machine.

    .venv/bin/python scripts/bench_compare.py --rounds 2 --seconds 10 [--tuned] [--json out.json]
    .venv/bin/python scripts/bench_compare.py --quick          # a smoke run of a few seconds
    .venv/bin/python scripts/bench_compare.py --profile DIR    # also py-spy profiles at max rate

Starts a Raftka cluster (3 controllers + 3 brokers), a 3-node NATS JetStream cluster (file
storage) and one Redis (AOF, appendfsync everysec), all on 127.0.0.1, then runs every case in
``--rounds`` interleaved rounds (the systems' order flips each round, so machine noise spreads
over both). Each client is a separate Python process (scripts/bench_compare_clients.py).
Cases (issue 14's targets):

  replicated    RF 3, acks=all, min ISR 2, 1 KiB, 3 partitions, one producer with default
                settings  vs  NATS R3 stream, nats-py publish_async with a window of 256
  tuned         (--tuned) 2 producers, batch.size 1 MB, linger 20 ms, lz4  vs  NATS, 2
                publishers with a window of 1024
  latency       the replicated setup at a fixed 2,000 records/s: p50 / p99 send to ack
  unreplicated  RF 1, acks=1, 100 B records, one producer  vs  Redis pipelined XADD (1000)
  consume       1 KiB records, one consumer, from the start of the replicated case's topic
                vs  Redis XRANGE count 1000 (and NATS R3 pull consumer, for reference)

The table shows per run records/s, MB/s, p50/p99 where measured, the CPU (in cores) of the
client processes and of the servers together, and Raftka's ratio to the anchor of the same
round. ``--json`` writes every figure, with each server process's CPU. Missing servers are
installed first (apt-get, as root) and missing Python clients into this venv (the ``bench``
extra). Every process started is stopped at the end, on Ctrl-C and on errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CLIENTS = Path(__file__).resolve().parent / "bench_compare_clients.py"
KIB = 1024


from scripts.bench_compare_report import (  # noqa: E402
    RATIO_OF,
    Run,
    format_table,
    summarize_collapsed,
)
from scripts.bench_compare_servers import (  # noqa: E402
    Servers,
    nats_streams,
    setup,
    wait_raftka,
)
from scripts.bench_support import proc_cpu_s  # noqa: E402


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run")
    parser.add_argument("--rate", type=int, default=2000, help="records/s of the latency case")
    parser.add_argument("--tuned", action="store_true", help="also the tuned produce case")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round of 2 s")
    parser.add_argument(
        "--cases",
        default="replicated,tuned,latency,unreplicated,consume",
        help="comma-separated subset of the cases (tuned runs only with --tuned)",
    )
    parser.add_argument("--consume-records", type=int, default=200_000,
                        help="records the consume case reads at most")  # fmt: skip
    parser.add_argument("--json", type=Path, metavar="PATH", help="write raw results here")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="also profile (py-spy) the producer and a leader broker at "
                        "maximum rate; collapsed stacks and a summary go to DIR")  # fmt: skip
    parser.add_argument("--no-setup", action="store_true", help="install nothing")
    parser.add_argument("--layout", choices=("separate", "combined"), default="separate",
                        help="Raftka's processes: 3 controllers + 3 brokers (separate), or 3 "
                        "nodes that are both (combined)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds, args.consume_records = 1, 2.0, 20_000
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in RATIO_OF]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}: choose from {', '.join(RATIO_OF)}")
    args.cases = [c for c in cases if c != "tuned" or args.tuned]
    if args.rounds < 1 or args.seconds <= 0 or args.rate < 1:
        parser.error("--rounds, --seconds and --rate must be positive")
    return args


# ----------------------------------------------------------------------------- measuring


@contextlib.contextmanager
def _profiled(pid: int, out: Path | None) -> Iterator[None]:
    if out is None:
        yield
        return
    spy = Path(sys.executable).parent / "py-spy"
    proc = subprocess.Popen([str(spy), "record", "--gil", "-r", "100", "-f", "raw", "-o", str(out),
                             "-p", str(pid)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)


def measure(
    case: str,
    system: str,
    rnd: int,
    specs: Sequence[dict[str, Any]],
    server_pids: dict[str, int],
    profile: dict[str, Path] | None = None,
) -> Run:
    """Start one worker per spec, wait until all are ready, then run them together while the
    servers' CPU is counted. ``profile`` maps "client" / a server name to an output file."""
    run = Run(case, system, rnd, load=os.getloadavg()[0])
    workers = [
        subprocess.Popen([sys.executable, str(CLIENTS), json.dumps(spec)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for spec in specs
    ]  # fmt: skip
    try:
        for w in workers:
            assert w.stdout is not None
            line = w.stdout.readline().strip()
            if line != "READY":
                _, err = w.communicate(timeout=30)
                raise RuntimeError(f"{system} worker did not start: {line} {err.strip()[-800:]}")
        profile = profile or {}
        with contextlib.ExitStack() as stack:
            for name, out in profile.items():
                pid = workers[0].pid if name == "client" else server_pids[name]
                stack.enter_context(_profiled(pid, out))
            before = {n: proc_cpu_s(p) for n, p in server_pids.items()}
            for w in workers:
                assert w.stdin is not None
                w.stdin.write("go\n")
                w.stdin.flush()
            results = []
            for w in workers:
                stdout, stderr = w.communicate(timeout=600)
                if w.returncode != 0:
                    raise RuntimeError(f"{system} worker failed: {stderr.strip()[-800:]}")
                results.append(json.loads(stdout.strip().splitlines()[-1]))
            run.server_cpu_s = {n: proc_cpu_s(p) - before[n] for n, p in server_pids.items()}
    except Exception as e:
        run.error = str(e).replace("\n", " ")[-300:]  # the traceback's last line matters
        return run
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
    run.records = sum(r["records"] for r in results)
    run.bytes = sum(r["bytes"] for r in results)
    run.elapsed = max(r["elapsed"] for r in results)
    run.client_cpu_s = sum(r["cpu_s"] for r in results)
    p50s = [r["p50_ms"] for r in results if "p50_ms" in r]
    p99s = [r["p99_ms"] for r in results if "p99_ms" in r]
    run.p50_ms = statistics.mean(p50s) if p50s else None
    run.p99_ms = max(p99s) if p99s else None
    return run


TUNED = {"batch.size": 1_048_576, "linger.ms": 20, "compression.type": "lz4"}


class Bench:
    def __init__(self, args: argparse.Namespace, servers: Servers) -> None:
        self.args = args
        self.s = servers
        self.runs: list[Run] = []

    def raftka_topics(self) -> dict[str, tuple[int, dict[str, str]]]:
        replicated = (3, {"min.insync.replicas": "2"})
        topics = {}
        for rnd in range(self.args.rounds):
            for case in ("replicated", "tuned", "latency"):
                topics[f"{case}-{rnd}"] = replicated
            topics[f"unreplicated-{rnd}"] = (1, {})
        topics["profile"] = replicated
        return topics

    def nats_stream_names(self) -> list[str]:
        return [f"{c}-{r}" for r in range(self.args.rounds)
                for c in ("replicated", "tuned", "latency")]  # fmt: skip

    def run_all(self) -> None:
        for rnd in range(self.args.rounds):
            for case in self.args.cases:
                pairs = getattr(self, f"case_{case}")(rnd)
                if rnd % 2:
                    pairs.reverse()  # alternate who goes first
                for system, specs in pairs:
                    run = measure(case, system, rnd, specs, self.s.pids(system))
                    self.runs.append(run)
                    print(f"  {case} round {rnd} {system}: {run.records_per_s:,.0f} records/s"
                          f"{'  ' + run.error if run.error else ''}", flush=True)  # fmt: skip

    def _raftka(self, topic: str, size: int, properties: dict[str, Any], **extra: Any) -> dict[str, Any]:  # fmt: skip
        return {"kind": "raftka_produce", "servers": ",".join(self.s.raftka.bootstrap_servers),
                "topic": topic, "size": size, "seconds": self.args.seconds,
                "properties": properties, **extra}  # fmt: skip

    def _nats(self, subject: str, window: int, **extra: Any) -> dict[str, Any]:
        return {"kind": "nats_produce", "urls": self.s.nats_urls, "subject": subject,
                "size": KIB, "window": window, "seconds": self.args.seconds, **extra}  # fmt: skip

    def case_replicated(self, rnd: int) -> list[tuple[str, list[dict[str, Any]]]]:
        return [("raftka", [self._raftka(f"replicated-{rnd}", KIB, {})]),
                ("nats", [self._nats(f"replicated-{rnd}", 256)])]  # fmt: skip

    def case_tuned(self, rnd: int) -> list[tuple[str, list[dict[str, Any]]]]:
        return [("raftka", [self._raftka(f"tuned-{rnd}", KIB, TUNED)] * 2),
                ("nats", [self._nats(f"tuned-{rnd}", 1024)] * 2)]  # fmt: skip

    def case_latency(self, rnd: int) -> list[tuple[str, list[dict[str, Any]]]]:
        rate = self.args.rate
        return [("raftka", [self._raftka(f"latency-{rnd}", KIB, {}, rate=rate)]),
                ("nats", [self._nats(f"latency-{rnd}", 256, rate=rate)])]  # fmt: skip

    def case_unreplicated(self, rnd: int) -> list[tuple[str, list[dict[str, Any]]]]:
        redis = {"kind": "redis_produce", "port": self.s.redis_port, "key": f"unrep-{rnd}",
                 "size": 100, "pipeline": 1000, "seconds": self.args.seconds}  # fmt: skip
        return [("raftka", [self._raftka(f"unreplicated-{rnd}", 100, {"acks": "1"})]),
                ("redis", [redis])]  # fmt: skip

    def case_consume(self, rnd: int) -> list[tuple[str, list[dict[str, Any]]]]:
        """Reads the replicated case's topic and stream of this round (run that case first:
        without it, this one fills its own); Redis reads a stream preloaded here."""
        limit, seconds = self.args.consume_records, max(self.args.seconds, 30.0)
        source = f"replicated-{rnd}"
        if "replicated" not in self.args.cases:
            measure("fill", "raftka", rnd, [self._raftka(source, KIB, {})], {})
            measure("fill", "nats", rnd, [self._nats(source, 256)], {})
        key = f"consume-{rnd}"
        _redis_fill(self.s.redis_port, key, limit)
        return [
            ("raftka", [{"kind": "raftka_consume", "topic": source, "partitions": 3,
                         "servers": ",".join(self.s.raftka.bootstrap_servers),
                         "seconds": seconds, "max_records": limit}]),
            ("redis", [{"kind": "redis_consume", "port": self.s.redis_port, "key": key,
                        "seconds": seconds, "max_records": limit}]),
            ("nats", [{"kind": "nats_consume", "urls": self.s.nats_urls, "subject": source,
                       "seconds": seconds, "max_records": limit}]),
        ]  # fmt: skip

    def profile(self, out: Path) -> list[str]:
        """py-spy at maximum rate: a default-settings producer and partition 0's leader
        broker, then a consumer reading what it wrote. Returns the summary lines."""
        out.mkdir(parents=True, exist_ok=True)
        leader = asyncio.run(_leader_of(self.s.raftka, "profile", 0))
        role = self.s.raftka.brokers[leader].role
        producing = {"client": out / "producer.txt", f"raftka-{role}-{leader}": out / "leader.txt"}
        run = measure("profile", "raftka", 0, [self._raftka("profile", KIB, {})],
                      self.s.pids("raftka"), profile=producing)  # fmt: skip
        lines = [_profiled_line("producer", run)]
        consume = {"kind": "raftka_consume", "topic": "profile", "partitions": 3,
                   "servers": ",".join(self.s.raftka.bootstrap_servers),
                   "seconds": max(self.args.seconds, 30.0),
                   "max_records": self.args.consume_records}  # fmt: skip
        consuming = {"client": out / "consumer.txt"}
        run = measure("profile", "raftka", 0, [consume], self.s.pids("raftka"), profile=consuming)
        lines.append(_profiled_line("consumer", run))
        for what, path in [*producing.items(), *consuming.items()]:
            if not path.exists():
                lines.append(f"{what}: no profile written ({path})")
                continue
            lines.append(f"{path.stem} ({what}), top functions by own time (own %, total %):")
            for name, own, total in summarize_collapsed(path.read_text().splitlines()):
                lines.append(f"  {own:5.1f} {total:5.1f}  {name}")
        return lines


def _profiled_line(what: str, run: Run) -> str:
    return (
        f"profiled {what}: {run.records_per_s:,.0f} records/s, client {run.client_cores:.2f} "
        f"cores ({run.client_us_per_record:.1f} us/record), servers {run.server_cores:.2f} "
        f"cores {run.error}"
    )


def _redis_fill(port: int, key: str, records: int) -> None:
    sys.path.insert(0, str(CLIENTS.parent))
    from bench_compare_clients import redis_fill

    redis_fill(port, key, records, KIB)


async def _leader_of(cluster: Any, topic: str, partition: int) -> int:
    from raftka.client.admin import AsyncAdmin

    async with AsyncAdmin(cluster.bootstrap, timeout_s=30) as admin:
        (description,) = await admin.describe_topics(topic)
        for p in description.partitions:
            if p.partition == partition:
                return int(p.leader)
    raise RuntimeError(f"{topic}-{partition} has no leader")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if not args.no_setup:
        setup()
    from raftka.ops.local_cluster import stop_clusters_on_sigterm

    stop_clusters_on_sigterm()
    print(f"command: {' '.join(sys.argv)}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
        servers = Servers(Path(tmp))
        bench = Bench(args, servers)
        try:
            servers.start_raftka(combined=args.layout == "combined")
            servers.start_nats()
            servers.start_redis()
            asyncio.run(wait_raftka(servers, bench.raftka_topics()))
            asyncio.run(nats_streams(servers.nats_urls, bench.nats_stream_names()))
            print(f"{args.rounds} rounds x {args.seconds:g} s: {', '.join(args.cases)}",
                  flush=True)  # fmt: skip
            bench.run_all()
            profile_lines = bench.profile(args.profile) if args.profile else []
        finally:
            servers.stop()
    print()
    print(format_table(bench.runs))
    for line in profile_lines:
        print(line)
    if args.json:
        args.json.write_text(json.dumps({
            "command": sys.argv, "cpus": os.cpu_count(), "seconds": args.seconds,
            "runs": [{**asdict(r), "records_per_s": r.records_per_s, "mb_per_s": r.mb_per_s}
                     for r in bench.runs],
            "profile": profile_lines,
        }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
