"""``raftka quotas``: client quotas (Kafka's kafka-configs --entity-type users/clients).

raftka quotas set (--user U | --default-user) [--client-id C | --default-client-id]
                  [--producer-byte-rate B] [--consumer-byte-rate B] [--request-percentage P]
raftka quotas remove ENTITY [--key producer_byte_rate ...]   (no --key: every quota of ENTITY)
raftka quotas list [ENTITY filter] [--strict]
"""

from __future__ import annotations

import argparse

from raftka.client.cli.admin import with_client
from raftka.client.cli.bootstrap import add_bootstrap_controller_argument
from raftka.client.quotas import (
    QuotaEntity,
    alter_client_quotas,
    describe_client_quotas,
)
from raftka.common.errors import InvalidRequestError
from raftka.common.rpc.controller_client import ControllerClient
from raftka.common.security.model import QUOTA_KEYS

_RATE_OPTIONS = {
    "producer_byte_rate": "bytes per second this entity may produce, per broker",
    "consumer_byte_rate": "bytes per second this entity may fetch, per broker",
    "request_percentage": "%% of one request-handling thread's time this entity may use",
}


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    quotas = sub.add_parser(
        "quotas", help="set, remove and list client quotas (byte rates, request time)"
    )
    qsub = quotas.add_subparsers(dest="action", required=True, metavar="ACTION")
    set_ = qsub.add_parser("set", help="set quotas of a user, a client id, or both")
    remove = qsub.add_parser("remove", help="remove quotas of an entity")
    listing = qsub.add_parser("list", help="list entities with quotas")
    for p in (set_, remove, listing):
        _entity_arguments(p)
        add_bootstrap_controller_argument(p)
    for key, text in _RATE_OPTIONS.items():
        set_.add_argument("--" + key.replace("_", "-"), dest=key, type=float, help=text)
    set_.add_argument("--validate-only", action="store_true", help="check only; change nothing")
    remove.add_argument(
        "--key",
        action="append",
        default=[],
        choices=QUOTA_KEYS,
        help="the quota to remove (repeatable; default: every quota of the entity)",
    )
    listing.add_argument(
        "--strict", action="store_true", help="only entities with exactly the types given"
    )
    actions = {"set": _set, "remove": _remove, "list": _list}
    quotas.set_defaults(run=with_client(lambda c, a: actions[a.action](c, a)))


def _entity_arguments(p: argparse.ArgumentParser) -> None:
    user = p.add_mutually_exclusive_group()
    user.add_argument("--user", help="the user (principal name without 'User:')")
    user.add_argument(
        "--default-user", action="store_true", help="the default of every user without its own"
    )
    client = p.add_mutually_exclusive_group()
    client.add_argument("--client-id", help="the client id (the clients' client_id setting)")
    client.add_argument(
        "--default-client-id",
        action="store_true",
        help="the default of every client id without its own",
    )


def entity_from_args(args: argparse.Namespace) -> dict[str, str | None]:
    entity: dict[str, str | None] = {}
    if args.user is not None or args.default_user:
        entity["user"] = None if args.default_user else args.user
    if args.client_id is not None or args.default_client_id:
        entity["client-id"] = None if args.default_client_id else args.client_id
    return entity


def _require_entity(args: argparse.Namespace) -> QuotaEntity:
    entity = entity_from_args(args)
    if not entity:
        raise InvalidRequestError(
            "name the entity: --user U or --default-user, and/or --client-id C or "
            "--default-client-id"
        )
    return entity


def format_value(value: float) -> str:
    """1048576, not 1.04858e+06; fractions as given."""
    return f"{value:.0f}" if value.is_integer() else f"{value:g}"


def format_entity(entity: QuotaEntity) -> str:
    return " ".join(
        f"{kind}={'<default>' if name is None else name}" for kind, name in sorted(entity.items())
    )


async def _set(client: ControllerClient, args: argparse.Namespace) -> int:
    entity = _require_entity(args)
    values = {k: getattr(args, k) for k in _RATE_OPTIONS if getattr(args, k) is not None}
    if not values:
        raise InvalidRequestError(
            "give at least one of --producer-byte-rate, --consumer-byte-rate, --request-percentage"
        )
    await alter_client_quotas(client, entity, values, validate_only=args.validate_only)
    done = "would set" if args.validate_only else "set"
    shown = " ".join(f"{k}={format_value(v)}" for k, v in values.items())
    print(f"{done} {shown} for {format_entity(entity)}")
    return 0


async def _remove(client: ControllerClient, args: argparse.Namespace) -> int:
    entity = _require_entity(args)
    keys = list(args.key) or list(QUOTA_KEYS)
    await alter_client_quotas(client, entity, remove=keys)
    print(f"removed {', '.join(keys)} for {format_entity(entity)}")
    return 0


async def _list(client: ControllerClient, args: argparse.Namespace) -> int:
    entries = await describe_client_quotas(client, entity_from_args(args), strict=args.strict)
    for entry in entries:
        values = " ".join(f"{k}={format_value(v)}" for k, v in sorted(entry.values.items()))
        print(f"{format_entity(entry.entity)}  {values}")
    if not entries:
        print("no quotas")
    return 0
