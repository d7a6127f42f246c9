"""The CLI's security options: option over environment over the local cluster's cluster.json,
which applies only to that cluster's addresses; passwords from files, never from arguments."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from raftka.client.cli.app import build_parser
from raftka.client.cli.auth_options import (
    ClientSecurity,
    add_security_arguments,
    read_password_file,
    resolve_security,
)
from raftka.common.errors import RaftkaError
from raftka.ops.cluster_file import TlsFiles, write_cluster_file

LOCAL = "127.0.0.1:9001"


@pytest.fixture(autouse=True)
def no_security_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CA_FILE", "CERT_FILE", "KEY_FILE", "TOKEN_USER", "TOKEN_PASSWORD_FILE"):
        monkeypatch.delenv(f"RAFTKA_{name}", raising=False)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_security_arguments(parser)
    return parser.parse_args(argv)


def tls_cluster(directory: Path) -> TlsFiles:
    files = TlsFiles("/c/ca.crt", "/c/admin.crt", "/c/admin.key")
    write_cluster_file(
        directory,
        {
            "bootstrap_controller": LOCAL,
            "bootstrap_servers": "127.0.0.1:9002",
            "tls": files.to_json(),
        },
    )
    return files


def test_the_local_tls_cluster_applies_only_to_its_own_addresses(tmp_path: Path) -> None:
    files = tls_cluster(tmp_path)
    mine = resolve_security(parse(), ["127.0.0.1:9002"], tmp_path)
    assert (mine.ca_file, mine.cert_file, mine.key_file) == (
        files.ca_file,
        files.cert_file,
        files.key_file,
    )
    assert mine.properties()["security.protocol"] == "SSL"
    other = resolve_security(parse(), ["10.0.0.9:9092"], tmp_path)
    assert not other.tls and other.channel() is None and other.properties() == {}


def test_options_beat_the_environment_which_beats_cluster_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls_cluster(tmp_path)
    monkeypatch.setenv("RAFTKA_CA_FILE", "/env/ca.crt")
    got = resolve_security(
        parse("--cert-file", "/o/me.crt", "--key-file", "/o/me.key"), [LOCAL], tmp_path
    )
    assert (got.ca_file, got.cert_file, got.key_file) == ("/env/ca.crt", "/o/me.crt", "/o/me.key")
    assert (
        resolve_security(parse("--ca-file", "/o/ca.crt"), [LOCAL], tmp_path).ca_file == "/o/ca.crt"
    )


def test_a_token_comes_from_a_password_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("correct horse\nignored\n")
    got = resolve_security(
        parse("--token-user", "alice", "--token-password-file", str(secret), "--ca-file", "/ca"),
        ["h:1"],
        tmp_path,
    )
    assert got.password == "correct horse" and "correct horse" not in repr(got)
    props = got.properties()
    assert props["security.protocol"] == "SASL_SSL" and props["sasl.username"] == "alice"
    channel = got.channel()
    assert channel is not None and channel.tls and channel.token


def test_mistakes_are_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RaftkaError, match="go together"):
        resolve_security(parse("--cert-file", "/a.crt"), ["h:1"], tmp_path)
    with pytest.raises(RaftkaError, match="--token-user"):
        resolve_security(parse("--token-password-file", "/pw"), ["h:1"], tmp_path)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(RaftkaError, match="--token-password-file"):
        resolve_security(parse("--token-user", "alice"), ["h:1"], tmp_path)
    (tmp_path / "empty").write_text("")
    with pytest.raises(RaftkaError, match="empty"):
        read_password_file(str(tmp_path / "empty"))
    with pytest.raises(RaftkaError, match="cannot read"):
        read_password_file(str(tmp_path / "missing"))


def test_every_connecting_command_takes_the_same_options() -> None:
    parser = build_parser()
    for argv in (
        ["topics", "list"],
        ["produce", "t"],
        ["consume", "t"],
        ["groups", "list"],
        ["acls", "list"],
        ["partitions", "reassignments"],
        [
            "copy",
            "--source-topic",
            "a",
            "--target-topic",
            "b",
            "--group",
            "g",
            "--transactional-id",
            "x",
        ],
        ["faults", "show", "--node", "h:1"],
        ["quotas", "list"],
        ["users", "list"],
    ):
        token = ["--token-user", "u", "--token-password-file", "/p"]
        args = parser.parse_args([*argv, "--ca-file", "/ca", *token])
        assert (args.ca_file, args.token_user, args.token_password_file) == ("/ca", "u", "/p")


def test_users_take_no_password_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    args = parser.parse_args(["users", "add", "bob", "--password-file", "/pw", "--ca-file", "/ca"])
    assert args.new_password_file == "/pw" and args.ca_file == "/ca"
    with pytest.raises(SystemExit):
        parser.parse_args(["users", "add", "bob", "--password", "hunter2"])
    assert "shell history" in capsys.readouterr().err
    assert ClientSecurity().channel() is None
