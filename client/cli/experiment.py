"""``raftka experiment``: a failover experiment on a local cluster, checked and reported.

    raftka experiment --duration 60 --seed 7 --fault-interval 10 \\
        --faults kill,pause,partition --acks all --out experiment-out

Exit status: 0 when the history is clean (nothing lost, duplicated or otherwise wrong, every
partition read back, the cluster recovered), 1 when it is not, 2 when the experiment could
not run. See docs/experiments.md.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import signal
import sys
from pathlib import Path

from raftka.common.errors import RaftkaError
from raftka.common.faults import PLANTED_BUGS
from raftka.ops.experiments.netns import DEFAULT_SUBNET, requirements_missing
from raftka.ops.experiments.schedule import (
    DEFAULT_TARGETS,
    ScheduleError,
    parse_kinds,
    parse_targets,
)


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "experiment",
        help="run a failover experiment on a local cluster and check that nothing is lost",
        description="Start a local cluster, run producers and consumers while faults strike "
        "on a seeded (or scripted) schedule, heal, read everything back, and check the "
        "history: writes out a JSON report, the history and a timeline PNG.",
    )
    p.add_argument("--duration", type=float, default=60.0, metavar="SECONDS", help="how long the workload and faults run (default 60)")  # fmt: skip
    p.add_argument("--seed", type=int, default=1, help="seed of the random fault schedule (default 1)")  # fmt: skip
    p.add_argument("--fault-interval", type=float, default=10.0, metavar="SECONDS", help="one fault about every this many seconds (default 10)")  # fmt: skip
    p.add_argument("--fault-duration", type=float, default=None, metavar="SECONDS", help="how long each fault lasts (default: 20-70%% of the interval, drawn per fault)")  # fmt: skip
    p.add_argument("--faults", default="kill,pause,partition", metavar="KINDS", help="fault kinds to draw from: kill, power-loss (kill -9 and the loss of what the partition logs had not fsynced), pause, partition, delay, loss (default kill,pause,partition)")  # fmt: skip
    p.add_argument("--targets", default=",".join(t.value for t in DEFAULT_TARGETS), metavar="ROLES", help="roles to strike: partition-leader, follower, controller-leader, controller-follower, random-broker (default: all but controller-follower)")  # fmt: skip
    p.add_argument("--schedule", type=Path, default=None, metavar="FILE", help="a scripted schedule (.json or .toml) instead of the random one")  # fmt: skip
    p.add_argument("--acks", choices=("all", "1"), default="all", help="producer acks (default all)")  # fmt: skip
    p.add_argument("--unclean-election", action="store_true", help="let the topic elect leaders from outside the ISR")  # fmt: skip
    p.add_argument("--min-insync-replicas", type=int, default=None, metavar="N", help="the topic's min.insync.replicas (default 2 with acks=all, 1 with acks=1)")  # fmt: skip
    p.add_argument("--controllers", type=int, default=3, choices=(1, 3, 5))
    p.add_argument("--brokers", type=int, default=3)
    p.add_argument("--partitions", type=int, default=3)
    p.add_argument("--replication-factor", type=int, default=3)
    p.add_argument("--producers", type=int, default=2, metavar="N", help="producers per partition (default 2)")  # fmt: skip
    p.add_argument("--rate", type=float, default=200.0, metavar="SENDS_PER_S", help="target sends per second, all producers together (default 200)")  # fmt: skip
    p.add_argument("--request-timeout", type=float, default=3.0, metavar="SECONDS", help="produce/fetch timeout (default 3)")  # fmt: skip
    p.add_argument("--unavailability-threshold", type=float, default=1.0, metavar="SECONDS", help="a gap between acknowledged sends of a partition longer than this is an unavailability window (default 1)")  # fmt: skip
    p.add_argument("--recovery-timeout", type=float, default=120.0, metavar="SECONDS", help="how long to wait for the healed cluster to recover (default 120)")  # fmt: skip
    p.add_argument("--progress-interval", type=float, default=5.0, metavar="SECONDS")
    p.add_argument("--netns", action="store_true", help="each node in its own network namespace, partitions cut on the wire (Linux, root)")  # fmt: skip
    p.add_argument("--netns-subnet", default=DEFAULT_SUBNET, metavar="CIDR", help=f"the /24 the namespaces use; must be unused on this machine (default {DEFAULT_SUBNET})")  # fmt: skip
    p.add_argument("--tls", action="store_true", help="TLS and mTLS on every listener and node-to-node channel, ACLs on (a throwaway CA whose certificates carry each node's address; the experiment's clients are User:admin)")  # fmt: skip
    p.add_argument("--controller-setting", action="append", default=[], metavar="KEY=VALUE", help="a controller config override, e.g. election_timeout_ms=500 (repeatable)")  # fmt: skip
    p.add_argument("--broker-setting", action="append", default=[], metavar="KEY=VALUE", help="a broker config override, e.g. replica_lag_time_max_ms=10000 (repeatable)")  # fmt: skip
    p.add_argument("--workload", choices=("queue", "group", "txn", "all"), default="queue", help="queue: producers and sequential readers; group: the same plus consumer-group members as processes, killed and paused on their own seeded schedule, checked for skips, rewinds and double ownership; txn: the same as queue plus transactional producers over several partitions, a read_committed observer and an exactly-once copier, checked for aborted reads, torn transactions, lost or duplicated writes and hanging transactions; all: group and txn together (default queue)")  # fmt: skip
    p.add_argument("--group-members", type=int, default=3, metavar="N", help="group workload: member processes (default 3)")  # fmt: skip
    p.add_argument("--member-session-timeout", type=int, default=6000, metavar="MS", help="group workload: the members' session timeout (default 6000)")  # fmt: skip
    p.add_argument("--txn-producers", type=int, default=2, metavar="N", help="txn workload: transactional producers (default 2)")  # fmt: skip
    p.add_argument("--transaction-timeout", type=int, default=10000, metavar="MS", help="txn workload: the producers' transaction timeout (default 10000)")  # fmt: skip
    p.add_argument("--planted-bug", action="append", default=[], metavar="NAME", help="plant a deliberate bug on every node to see the checker catch it (repeatable): " + ", ".join(f"{k} ({v})" for k, v in sorted(PLANTED_BUGS.items())))  # fmt: skip
    p.add_argument("--auto-commit-interval", type=int, default=1000, metavar="MS", help="group workload: the members' auto-commit interval (default 1000)")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("experiment-out"), metavar="DIR", help="where the report, history, timeline and cluster data go (default experiment-out)")  # fmt: skip
    p.set_defaults(run=_run)


def _settings(pairs: list[str], flag: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise ScheduleError(f"{flag} wants KEY=VALUE, got {pair!r}")
        text = value.strip()
        out[key.strip()] = (
            int(text)
            if text.lstrip("-").isdigit()
            else text.lower() == "true"
            if text.lower() in ("true", "false")
            else text
        )
    return out


def _run(args: argparse.Namespace) -> int:
    from raftka.ops.experiments.config import ExperimentConfig
    from raftka.ops.experiments.runner import ExperimentOutcome, run_experiment

    try:
        if args.netns:
            missing = requirements_missing()
            if missing:
                raise ScheduleError(f"--netns: {missing}")
        if args.out.exists() and any(args.out.iterdir()):
            raise ScheduleError(f"{args.out} is not empty: choose a new --out directory")
        config = ExperimentConfig(
            out_dir=args.out,
            duration_s=args.duration,
            seed=args.seed,
            fault_interval_s=args.fault_interval,
            fault_duration_s=args.fault_duration,
            faults=parse_kinds(args.faults),
            targets=parse_targets(args.targets),
            schedule_file=args.schedule,
            acks=-1 if args.acks == "all" else 1,
            unclean_election=args.unclean_election,
            min_insync_replicas=args.min_insync_replicas,
            controllers=args.controllers,
            brokers=args.brokers,
            partitions=args.partitions,
            replication_factor=args.replication_factor,
            producers_per_partition=args.producers,
            rate=args.rate,
            request_timeout_s=args.request_timeout,
            unavailability_threshold_s=args.unavailability_threshold,
            recovery_timeout_s=args.recovery_timeout,
            progress_interval_s=args.progress_interval,
            netns=args.netns,
            netns_subnet=args.netns_subnet,
            tls=args.tls,
            controller_settings=_settings(args.controller_setting, "--controller-setting"),
            broker_settings=_settings(args.broker_setting, "--broker-setting"),
            workload=args.workload,
            group_members=args.group_members,
            txn_producers=args.txn_producers,
            planted_bugs=tuple(args.planted_bug),
            transaction_timeout_ms=args.transaction_timeout,
            member_session_timeout_ms=args.member_session_timeout,
            auto_commit_interval_ms=args.auto_commit_interval,
        )
        config.schedule()  # validate before starting anything
    except ScheduleError as e:
        print(f"raftka experiment: {e}", file=sys.stderr)
        return 2
    command = shlex.join(["raftka", *sys.argv[1:]])

    async def main() -> ExperimentOutcome:
        # SIGTERM cancels the run like Ctrl-C does, so the cluster is stopped and any
        # namespaces deleted on the way out.
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await run_experiment(config, lambda line: print(line, flush=True), command=command)

    try:
        outcome = asyncio.run(main())
    except RaftkaError as e:
        print(f"raftka experiment: {e.message}", file=sys.stderr)
        return 2
    except asyncio.CancelledError:
        print("raftka experiment: stopped", file=sys.stderr)
        return 130
    return 0 if outcome.clean else 1
