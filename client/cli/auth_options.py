"""How ``raftka`` commands authenticate: one set of options for every command that connects.

    --ca-file PEM          the CA to trust (turns TLS on)          $RAFTKA_CA_FILE
    --cert-file PEM        client certificate (mTLS), with ...     $RAFTKA_CERT_FILE
    --key-file PEM         ... its private key                     $RAFTKA_KEY_FILE
    --token-user NAME      a bearer token for this user (TLS)      $RAFTKA_TOKEN_USER
    --token-password-file FILE  ... whose password is this file's  $RAFTKA_TOKEN_PASSWORD_FILE
                           first line (prompted for on a terminal when not given)

Each setting is taken from its option, else its environment variable, else, when the command
talks to the cluster that ``raftka up`` runs (one of the addresses is in its ``cluster.json``),
from that file: a ``raftka up --tls`` cluster records its CA and admin certificate there, so
commands against it need no option at all. Any of them turns TLS on; none leaves plaintext.

A password is never taken on the command line (it would show in ``ps`` and the shell
history): it comes from a file or a prompt.

The token options say ``token`` because ``--user`` and ``--password-file`` mean something
else in some commands (``raftka quotas --user``: the quota's user; ``raftka users add
--password-file``: the new user's password).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from raftka.common.errors import RaftkaError
from raftka.common.security.tls import ChannelSecurity, TlsConfigError, bearer_token
from raftka.ops.cluster_file import TlsFiles, cluster_addresses, read_tls_files

CA_FILE_ENV = "RAFTKA_CA_FILE"
CERT_FILE_ENV = "RAFTKA_CERT_FILE"
KEY_FILE_ENV = "RAFTKA_KEY_FILE"
USER_ENV = "RAFTKA_TOKEN_USER"
PASSWORD_FILE_ENV = "RAFTKA_TOKEN_PASSWORD_FILE"

_FILE_OPTIONS = (
    ("ca_file", "--ca-file", CA_FILE_ENV, "PEM CA bundle to trust; turns TLS on"),
    ("cert_file", "--cert-file", CERT_FILE_ENV, "PEM client certificate (mTLS), with --key-file"),
    ("key_file", "--key-file", KEY_FILE_ENV, "PEM private key of --cert-file"),
)


def add_security_arguments(parser: argparse.ArgumentParser) -> None:
    """The TLS and token options."""
    group = parser.add_argument_group(
        "security",
        "TLS and authentication; each option defaults to its environment variable, else to "
        "the TLS files `raftka up --tls` records for its cluster",
    )
    for dest, option, env, text in _FILE_OPTIONS:
        group.add_argument(option, dest=dest, metavar="PEM", help=f"{text} (${env})")
    group.add_argument(
        "--token-user",
        dest="token_user",
        metavar="NAME",
        help=f"authenticate as this user with a bearer token over TLS (${USER_ENV})",
    )
    group.add_argument(
        "--token-password-file",
        dest="token_password_file",
        metavar="FILE",
        help=f"the token user's password: the file's first line (${PASSWORD_FILE_ENV}; "
        "default: ask on the terminal)",
    )


def read_password_file(path: str) -> str:
    """A password kept in a file: its first line, without the line ending."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RaftkaError(f"cannot read the password file {path!r}: {e}") from None
    password = text.splitlines()[0] if text else ""
    if not password:
        raise RaftkaError(f"the password file {path!r} is empty (its first line is the password)")
    return password


def prompt_password(prompt: str, *, hint: str, confirm: bool = False) -> str:
    """Ask on the terminal (echo off); refuse when there is no terminal to ask on."""
    if not sys.stdin.isatty():
        raise RaftkaError(
            f"no password given and no terminal to ask on: {hint} (a password is never taken "
            "on the command line)"
        )
    password = getpass.getpass(prompt)
    if not password:
        raise RaftkaError("the password is empty")
    if confirm and getpass.getpass("again: ") != password:
        raise RaftkaError("the two passwords differ; nothing changed")
    return password


@dataclass(frozen=True, slots=True)
class ClientSecurity:
    """The security one command connects with (empty: plaintext)."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    user: str = ""
    password: str = field(default="", repr=False)

    @property
    def tls(self) -> bool:
        return bool(self.ca_file or self.cert_file or self.key_file or self.user)

    def channel(self) -> ChannelSecurity | None:
        """For Admin / ControllerClient / other channels; None: plaintext."""
        if not self.tls:
            return None
        try:
            token = bearer_token(self.user, self.password) if self.user else ""
            return ChannelSecurity(
                tls=True,
                ca_file=self.ca_file,
                cert_file=self.cert_file,
                key_file=self.key_file,
                token=token,
            )
        except (ValueError, TlsConfigError) as e:
            raise RaftkaError(
                f"{e}: see --ca-file, --cert-file, --key-file, --token-user"
            ) from None

    def properties(self) -> dict[str, str]:
        """For Producer / Consumer configs, by their Kafka (librdkafka) names."""
        if not self.tls:
            return {}
        props = {"security.protocol": "SASL_SSL" if self.user else "SSL"}
        for name, value in (
            ("ssl.ca.location", self.ca_file),
            ("ssl.certificate.location", self.cert_file),
            ("ssl.key.location", self.key_file),
            ("sasl.username", self.user),
            ("sasl.password", self.password),
        ):
            if value:
                props[name] = value
        return props


def resolve_security(
    args: argparse.Namespace, addresses: Sequence[str], cluster_directory: Path
) -> ClientSecurity:
    """The security of a command reaching ``addresses``: options, else environment, else the
    TLS files of the local cluster in ``cluster_directory`` if the addresses are its."""
    chosen: dict[str, str] = {}
    for dest, _option, env, _text in _FILE_OPTIONS:
        chosen[dest] = getattr(args, dest, None) or os.environ.get(env, "")
    user = getattr(args, "token_user", None) or os.environ.get(USER_ENV, "")
    password_file = getattr(args, "token_password_file", None) or os.environ.get(
        PASSWORD_FILE_ENV, ""
    )
    local = _local_cluster_files(addresses, cluster_directory)
    if local is not None:
        for dest in chosen:
            chosen[dest] = chosen[dest] or getattr(local, dest)
    if bool(chosen["cert_file"]) != bool(chosen["key_file"]):
        raise RaftkaError("--cert-file and --key-file go together (mTLS needs both)")
    password = ""
    if user:
        password = (
            read_password_file(password_file)
            if password_file
            else prompt_password(
                f"password of {user}: ",
                hint=f"give --token-password-file FILE (${PASSWORD_FILE_ENV})",
            )
        )
    elif password_file:
        raise RaftkaError(
            f"a token password file is given but no user: add --token-user NAME (${USER_ENV})"
        )
    return ClientSecurity(user=user, password=password, **chosen)


def _local_cluster_files(addresses: Sequence[str], directory: Path) -> TlsFiles | None:
    """The local TLS cluster's files, when some of ``addresses`` are that cluster's."""
    files = read_tls_files(directory)
    if files is None or not set(addresses) & cluster_addresses(directory):
        return None
    return files
