"""``raftka users``: the users whose passwords the cluster checks bearer tokens against.

    raftka users add alice --password-file alice.pw [--mechanism SCRAM-SHA-256] [--iterations N]
    raftka users add alice                      # asks for the password twice on the terminal
    raftka users list [NAME ...]
    raftka users remove alice [--mechanism SCRAM-SHA-256]

The password comes from a file (its first line) or the terminal, never from the command line,
where ``ps`` and the shell history would show it; it never leaves this process either: only
PBKDF2 of it is sent (AsyncAdmin.set_user_password). ``--password-file`` is the NEW user's
password; the caller authenticates as every command does (auth_options.py: a certificate,
cluster.json's admin one by default, or --token-user / --token-password-file).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from raftka.client.cli.auth_options import prompt_password, read_password_file
from raftka.client.cli.bootstrap import (
    add_bootstrap_controller_argument,
    connection_security,
    controller_sources,
)
from raftka.client.cli.groups import table
from raftka.common.errors import RaftkaError
from raftka.common.security import scram
from raftka.v1 import common_pb2 as cpb

if TYPE_CHECKING:
    from raftka.client.admin import AsyncAdmin

MECHANISMS = {"SCRAM-SHA-512": cpb.SCRAM_SHA_512, "SCRAM-SHA-256": cpb.SCRAM_SHA_256}
"""Kafka's mechanism names; tokens are checked against SHA-512 first."""


def mechanism_name(mechanism: int) -> str:
    return next((n for n, m in MECHANISMS.items() if m == mechanism), str(mechanism))


class _RefusePassword(argparse.Action):
    """``--password VALUE``: refused before anything connects, saying what to use instead."""

    def __call__(self, parser: argparse.ArgumentParser, *_args: object, **_kw: object) -> None:
        parser.error(
            "a password on the command line shows in `ps` and in the shell history: put it in "
            "a file (--password-file FILE, first line) or leave it out to be asked for it"
        )


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    users = sub.add_parser(
        "users",
        help="add, list and remove users (passwords for bearer tokens)",
        description="Users authenticate with bearer tokens (security.protocol=SASL_SSL, "
        "sasl.username, sasl.password) checked against the SCRAM credential stored here. "
        "Changing users needs ALTER on the cluster, listing them DESCRIBE.",
    )
    usub = users.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = usub.add_parser("add", help="create a user, or set a user's password")
    add.add_argument("name")
    add.add_argument(
        "--password-file",
        dest="new_password_file",
        metavar="FILE",
        help="the new password: this file's first line (default: ask twice on the terminal)",
    )
    add.add_argument("--password", action=_RefusePassword, help=argparse.SUPPRESS)
    add.add_argument("--mechanism", choices=sorted(MECHANISMS), default="SCRAM-SHA-512")
    add.add_argument(
        "--iterations",
        type=int,
        default=scram.DEFAULT_ITERATIONS,
        help=f"PBKDF2 iterations, {scram.MIN_ITERATIONS}..{scram.MAX_ITERATIONS} "
        f"(default {scram.DEFAULT_ITERATIONS})",
    )
    listing = usub.add_parser("list", help="users and their mechanisms (never their keys)")
    listing.add_argument("names", nargs="*", metavar="NAME", help="only these users")
    remove = usub.add_parser("remove", help="remove a user's credentials")
    remove.add_argument("name")
    remove.add_argument(
        "--mechanism",
        choices=sorted(MECHANISMS),
        help="remove only this mechanism's credential (default: all of them)",
    )
    for p in (add, listing, remove):
        add_bootstrap_controller_argument(p)
    users.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    actions: dict[str, Callable[[AsyncAdmin, argparse.Namespace], Coroutine[Any, Any, int]]] = {
        "add": _add,
        "list": _list,
        "remove": _remove,
    }
    password = _new_password(args) if args.action == "add" else ""

    async def main() -> int:
        from raftka.client.admin import AsyncAdmin

        controllers, servers = controller_sources(args.bootstrap_controller, args.bootstrap_server)
        security = connection_security(args, controllers or servers).channel()
        async with AsyncAdmin(
            controllers, bootstrap_servers=servers, timeout_s=args.timeout, security=security
        ) as admin:
            args.new_password = password
            return await actions[args.action](admin, args)

    return asyncio.run(main())


def _new_password(args: argparse.Namespace) -> str:
    """Checked before anything connects: iterations in range, a password to set."""
    if not scram.MIN_ITERATIONS <= args.iterations <= scram.MAX_ITERATIONS:
        raise RaftkaError(
            f"--iterations {args.iterations} is outside {scram.MIN_ITERATIONS}.."
            f"{scram.MAX_ITERATIONS}"
        )
    if args.new_password_file:
        return read_password_file(args.new_password_file)
    return prompt_password(
        f"new password of {args.name}: ", hint="give --password-file FILE", confirm=True
    )


async def _add(admin: AsyncAdmin, args: argparse.Namespace) -> int:
    await admin.set_user_password(
        args.name,
        args.new_password,
        mechanism=MECHANISMS[args.mechanism],
        iterations=args.iterations,
    )
    print(f"set the {args.mechanism} password of {args.name} ({args.iterations} iterations)")
    return 0


async def _list(admin: AsyncAdmin, args: argparse.Namespace) -> int:
    described = await admin.describe_users(args.names)
    rows = [
        (u.name, mechanism_name(c.mechanism), c.iterations)
        for u in sorted(described, key=lambda u: u.name)
        for c in sorted(u.credentials, key=lambda c: c.mechanism)
    ]
    if not rows:
        print("no users")
        return 0
    print(table([("USER", "MECHANISM", "ITERATIONS"), *rows]))
    return 0


async def _remove(admin: AsyncAdmin, args: argparse.Namespace) -> int:
    mechanisms = [MECHANISMS[args.mechanism]] if args.mechanism else []
    await admin.delete_user(args.name, mechanisms=mechanisms)
    which = f"the {args.mechanism} credential" if args.mechanism else "every credential"
    print(f"removed {which} of {args.name}")
    return 0
