"""``raftka topics|configs|quorum|cluster``: operator commands against the controller quorum."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Sequence

from raftka.client.cli.bootstrap import (
    add_bootstrap_controller_argument,
    connection_security,
    controller_sources,
)
from raftka.client.discovery import controllers_from_brokers
from raftka.common.errors import InvalidRequestError
from raftka.common.rpc.controller_client import ControllerClient
from raftka.v1 import common_pb2 as cpb
from raftka.v1 import controller_pb2 as pb


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bootstrap = add_bootstrap_controller_argument
    topics = sub.add_parser("topics", help="create, delete, list and describe topics")
    tsub = topics.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = tsub.add_parser("create", help="create a topic")
    create.add_argument("name")
    create.add_argument(
        "--partitions", type=int, default=0, help="partition count (default: cluster default, 1)"
    )
    create.add_argument(
        "--replication-factor", type=int, default=0, help="replicas per partition (default 1)"
    )
    create.add_argument(
        "--config", action="append", default=[], metavar="NAME=VALUE", help="a topic config"
    )
    create.add_argument(
        "--validate-only", action="store_true", help="check the request, create nothing"
    )
    delete = tsub.add_parser("delete", help="delete topics")
    delete.add_argument("names", nargs="+")
    tsub.add_parser("list", help="list topic names")
    describe = tsub.add_parser("describe", help="partitions, leaders, replicas and ISRs")
    describe.add_argument("names", nargs="*")
    grow = tsub.add_parser("add-partitions", help="raise a topic's partition count")
    grow.add_argument("name")
    grow.add_argument("--total", type=int, required=True, help="the new total partition count")
    for p in (create, delete, describe, grow, tsub.choices["list"]):
        bootstrap(p)
    topics.set_defaults(run=with_client(_topics))

    configs = sub.add_parser("configs", help="describe and alter topic configs")
    csub = configs.add_subparsers(dest="action", required=True, metavar="ACTION")
    cdescribe = csub.add_parser("describe", help="a topic's configs, defaults included")
    cdescribe.add_argument("topic")
    alter = csub.add_parser("alter", help="set or delete topic configs")
    alter.add_argument("topic")
    alter.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    alter.add_argument("--delete", action="append", default=[], metavar="NAME")
    alter.add_argument("--validate-only", action="store_true")
    for p in (cdescribe, alter):
        bootstrap(p)
    configs.set_defaults(run=with_client(_configs))

    quorum = sub.add_parser("quorum", help="the controller quorum: status and leadership transfer")
    qsub = quorum.add_subparsers(dest="action", required=True, metavar="ACTION")
    bootstrap(qsub.add_parser("describe", help="leader, term and each voter's progress"))
    transfer = qsub.add_parser("transfer-leadership", help="move leadership to another voter")
    transfer.add_argument(
        "--to", type=int, default=-1, help="target node id (default: most caught-up)"
    )
    bootstrap(transfer)
    quorum.set_defaults(run=with_client(_quorum))

    cluster = sub.add_parser("cluster", help="cluster id, controllers and brokers")
    csub2 = cluster.add_subparsers(dest="action", required=True, metavar="ACTION")
    bootstrap(csub2.add_parser("describe"))
    cluster.set_defaults(run=with_client(_cluster))


def with_client(
    command: Callable[[ControllerClient, argparse.Namespace], object],
) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        async def main() -> int:
            controllers, servers = controller_sources(
                args.bootstrap_controller, args.bootstrap_server
            )
            security = connection_security(args, controllers or servers).channel()
            discover = (
                (lambda: controllers_from_brokers(servers, security=security)) if servers else None
            )
            async with ControllerClient(
                controllers, timeout_s=args.timeout, discover=discover, security=security
            ) as client:
                result = command(client, args)
                code = await result if asyncio.iscoroutine(result) else result
                return int(code) if isinstance(code, int) else 0

        return asyncio.run(main())

    return run


def _pairs(items: Sequence[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise InvalidRequestError(f"{what} {item!r} must look like NAME=VALUE")
        out[name] = value
    return out


def _report(results: Sequence[pb.TopicResult | pb.CreateTopicResult], verb: str) -> int:
    failed = 0
    for r in results:
        if r.error_code == cpb.NONE:
            print(f"{verb} {r.name}")
        else:
            failed += 1
            print(f"{r.name}: {cpb.ErrorCode.Name(r.error_code)}: {r.error_message}")
    return 1 if failed else 0


async def _topics(client: ControllerClient, args: argparse.Namespace) -> int:
    if args.action == "create":
        topic = pb.NewTopic(
            name=args.name,
            num_partitions=args.partitions,
            replication_factor=args.replication_factor,
            configs=_pairs(args.config, "--config"),
        )
        results = await client.create_topics([topic], validate_only=args.validate_only)
        return _report(results, "would create" if args.validate_only else "created topic")
    if args.action == "delete":
        return _report(await client.delete_topics(args.names), "deleted topic")
    if args.action == "add-partitions":
        return _report(await client.create_partitions({args.name: args.total}), "grew topic")
    topics = await client.describe_topics(getattr(args, "names", []) or [])
    if args.action == "list":
        for t in sorted(topics, key=lambda t: t.name):
            print(t.name)
        return 0
    status = 0
    for t in topics:
        if t.error_code != cpb.NONE:
            print(f"{t.name}: {cpb.ErrorCode.Name(t.error_code)}: {t.error_message}")
            status = 1
            continue
        configs = ", ".join(f"{k}={v}" for k, v in sorted(t.configs.items()))
        print(
            f"Topic: {t.name}\tTopicId: {t.topic_id}\tPartitions: {len(t.partitions)}\tConfigs: {configs}"
        )
        for p in t.partitions:
            print(
                f"\tPartition: {p.partition}\tLeader: {p.leader}\tLeaderEpoch: {p.leader_epoch}"
                f"\tReplicas: {','.join(map(str, p.replicas))}\tIsr: {','.join(map(str, p.isr))}"
            )
    return status


async def _configs(client: ControllerClient, args: argparse.Namespace) -> int:
    if args.action == "describe":
        resource = pb.ConfigResource(type=cpb.RESOURCE_TYPE_TOPIC, name=args.topic)
        results = await client.describe_configs([resource])
        for r in results:
            if r.error_code != cpb.NONE:
                print(f"{r.name}: {cpb.ErrorCode.Name(r.error_code)}: {r.error_message}")
                return 1
            for e in r.entries:
                source = cpb.ConfigSource.Name(e.source).removeprefix("CONFIG_SOURCE_").lower()
                print(f"{e.name}={e.value}\t({source})")
        return 0
    ops = [
        pb.AlterConfigOp(name=n, op=pb.AlterConfigOp.SET, value=v)
        for n, v in _pairs(args.set, "--set").items()
    ]
    ops += [pb.AlterConfigOp(name=n, op=pb.AlterConfigOp.DELETE) for n in args.delete]
    if not ops:
        raise InvalidRequestError("nothing to change: give --set NAME=VALUE or --delete NAME")
    alter = pb.AlterConfigResource(type=cpb.RESOURCE_TYPE_TOPIC, name=args.topic, ops=ops)
    results = await client.alter_configs([alter], validate_only=args.validate_only)
    for r in results:
        if r.error_code != cpb.NONE:
            print(f"{r.name}: {cpb.ErrorCode.Name(r.error_code)}: {r.error_message}")
            return 1
        print(f"{'validated' if args.validate_only else 'updated'} configs of {r.name}")
    return 0


async def _quorum(client: ControllerClient, args: argparse.Namespace) -> int:
    if args.action == "transfer-leadership":
        response = await client.transfer_leadership(args.to)
        print(f"node {response.new_leader_id} now leads (term {response.term})")
        return 0
    q = await client.describe_quorum()
    print(
        f"LeaderId: {q.leader_id}\tTerm: {q.term}\tCommitIndex: {q.commit_index}\t(answered by node {q.answered_by})"
    )
    print("NodeId\tLastIndex\tLag\tLastContactMs\tAddress")
    for v in q.voters:
        contact = "-" if v.last_contact_ms < 0 else str(v.last_contact_ms)
        print(
            f"{v.node_id}\t{v.last_index}\t{v.lag}\t{contact}\t{v.endpoint.host}:{v.endpoint.port}"
        )
    return 0


async def _cluster(client: ControllerClient, args: argparse.Namespace) -> int:
    c = await client.describe_cluster()
    print(f"ClusterId: {c.cluster_id}\tActiveController: {c.controller_id}")
    for n in c.controllers:
        print(f"controller {n.node_id}\t{n.endpoint.host}:{n.endpoint.port}")
    for b in c.brokers:
        state = (
            "fenced" if b.fenced else ("shutting down" if b.in_controlled_shutdown else "active")
        )
        eps = ",".join(f"{e.host}:{e.port}" for e in b.endpoints)
        print(f"broker {b.broker_id}\tepoch {b.broker_epoch}\t{state}\t{eps}\track={b.rack or '-'}")
    return 0
