"""Consumer-group figures on a local cluster, with members as real processes.

    .venv/bin/python scripts/bench_groups.py failover --trials 20 --session-timeout-ms 6000
    .venv/bin/python scripts/bench_groups.py failover --trials 3            # default 45 s session
    .venv/bin/python scripts/bench_groups.py join --trials 10 --protocol stream
    .venv/bin/python scripts/bench_groups.py join --trials 10 --protocol unary

Starts 1 controller + 3 brokers on 127.0.0.1, a 6-partition topic (replication factor 3) and a
producer writing 200 records/s across it, and members (``group_member`` processes) in a group.

``failover``: three members share the topic. Each trial kills one member with SIGKILL and
measures the time until every partition it owned has been returned by poll() in another
member, then starts it again and waits until the three share the topic evenly again.

``join``: two members share the topic; each trial starts a third member and measures the time
from its process start until its first assignment (which needs the two to revoke partitions
first: with the stream protocol they learn of it at once, with unary polling at their next
heartbeat), then stops it (it leaves) and waits until the two own everything again.
Prints every trial and the median and max.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from raftka.client import AsyncProducer, TopicPartition
from raftka.client.admin import AsyncAdmin
from raftka.ops.experiments.group_history import GroupEventKind
from raftka.ops.experiments.group_members import GroupMembers
from raftka.ops.local_cluster import LocalCluster, stop_clusters_on_sigterm

TOPIC = "bench-groups"
PARTITIONS = 6


def _owned(members: GroupMembers) -> dict[str, set[TopicPartition]]:
    alive = {members.label(i) for i in members.indexes() if members.running(i)}
    owned: dict[str, set[TopicPartition]] = {}
    for e in members.events():
        mine = owned.setdefault(e.member, set())
        if e.kind is GroupEventKind.ASSIGNED:
            mine.update(e.partitions)
        elif e.kind is GroupEventKind.REVOKED:
            mine.difference_update(e.partitions)
    return {m: tps for m, tps in owned.items() if m in alive}


def _even(members: GroupMembers, count: int) -> bool:
    owned = _owned(members)
    sizes = [len(tps) for tps in owned.values()]
    every = set().union(*owned.values()) if owned else set()
    return (
        len(owned) == count
        and len(every) == PARTITIONS
        and sum(sizes) == PARTITIONS
        and max(sizes) - min(sizes) <= 1
    )


async def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout_s:g}s waiting for {what}")


async def _produce(cluster: LocalCluster, stop: asyncio.Event) -> None:
    async with AsyncProducer(bootstrap_servers=cluster.bootstrap_servers, linger_ms=0) as p:
        n = 0
        while not stop.is_set():
            await p.send(TOPIC, f"v{n}".encode(), partition=n % PARTITIONS)
            n += 1
            await asyncio.sleep(0.005)


async def failover(
    cluster: LocalCluster, members: GroupMembers, args: argparse.Namespace
) -> list[float]:
    times = []
    session_s = (args.session_timeout_ms or 45_000) / 1000
    for i in range(3):
        members.start(i)
    await _wait(lambda: _even(members, 3), 60, "three members sharing the topic")
    for trial in range(args.trials):
        victim_index = trial % 3
        victim = members.label(victim_index)
        lost = set(_owned(members).get(victim, set()))
        members.kill(victim_index)
        killed = time.monotonic()

        def moved(
            victim: str = victim, killed: float = killed, lost: set[TopicPartition] = lost
        ) -> bool:
            read: set[TopicPartition] = set()
            for e in members.events():
                if e.kind is GroupEventKind.CONSUMED and e.member != victim and e.time > killed:
                    read.update(e.partitions)
            return lost <= read

        await _wait(moved, session_s + 60, "the victim's partitions read elsewhere")
        took = time.monotonic() - killed
        times.append(took)
        print(
            f"failover trial {trial + 1}: {len(lost)} partitions of {victim} read by others after {took:.2f} s",
            flush=True,
        )
        members.start(victim_index)
        await _wait(lambda: _even(members, 3), session_s + 60, "three members again")
    return times


async def join(
    cluster: LocalCluster, members: GroupMembers, args: argparse.Namespace
) -> list[float]:
    times = []
    for i in range(2):
        members.start(i)
    await _wait(lambda: _even(members, 2), 60, "two members sharing the topic")
    for trial in range(args.trials):
        started = time.monotonic()
        label = members.start(2)

        def assigned(label: str = label) -> bool:
            return any(
                e.member == label and e.kind is GroupEventKind.ASSIGNED and e.partitions
                for e in members.events()
            )

        await _wait(assigned, 120, "the new member's first partitions")
        first = min(
            e.time
            for e in members.events()
            if e.member == label and e.kind is GroupEventKind.ASSIGNED and e.partitions
        )
        times.append(first - started)
        print(
            f"join trial {trial + 1}: first partitions {first - started:.2f} s after the process started",
            flush=True,
        )
        members.stop(2)
        await _wait(lambda: _even(members, 2), 120, "two members again")
    return times


async def run(args: argparse.Namespace, base: Path) -> None:
    cluster = LocalCluster(base / "cluster", controllers=1, brokers=3, log_level="warning")
    cluster.prepare()
    cluster.start()
    stop = asyncio.Event()
    members: GroupMembers | None = None
    try:
        async with AsyncAdmin(cluster.bootstrap, timeout_s=60) as admin:
            for _ in range(600):  # every broker registered and unfenced, within a minute
                brokers = (await admin.describe_cluster()).brokers
                if len([b for b in brokers if not b.fenced]) == len(cluster.brokers):
                    break
                await asyncio.sleep(0.1)
            await admin.create_topic(TOPIC, partitions=PARTITIONS, replication_factor=3)
        producing = asyncio.create_task(_produce(cluster, stop))
        extra = ["--group-protocol", args.protocol] if args.mode == "join" else []
        members = GroupMembers(
            base / "members",
            cluster.bootstrap_servers,
            TOPIC,
            f"bench-{args.mode}",
            session_timeout_ms=args.session_timeout_ms,
            extra_args=extra,
        )
        times = await (failover if args.mode == "failover" else join)(cluster, members, args)
        label = (
            f"session timeout {args.session_timeout_ms or 45000} ms"
            if args.mode == "failover"
            else f"protocol {args.protocol}"
        )
        print(
            f"{args.mode} ({label}), {len(times)} trials: median {statistics.median(times):.2f} s, "
            f"max {max(times):.2f} s, min {min(times):.2f} s"
        )
        stop.set()
        await producing
    finally:
        stop.set()
        if members is not None:
            members.stop_all(timeout_s=5)
        cluster.stop_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=("failover", "join"))
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument(
        "--session-timeout-ms", type=int, default=None, help="default: the consumer's (45000)"
    )
    parser.add_argument(
        "--protocol", choices=("stream", "unary"), default="stream", help="join: the heartbeat form"
    )
    args = parser.parse_args()
    stop_clusters_on_sigterm()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
