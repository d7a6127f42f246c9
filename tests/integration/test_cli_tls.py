"""``raftka up --tls`` and the command line against it, as real processes: commands find the
CA and the admin certificate in cluster.json (or take them as options), ``raftka users``
manages token passwords, tokens work from the Python client and the CLI and a wrong password
is refused clearly, and a killed TLS node restarts with its certificate."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from raftka.client.producer import AsyncProducer
from raftka.common.security_errors import AuthenticationFailedError
from raftka.ops.cluster_file import TlsFiles, read_cluster_file, read_tls_files
from tests.conditions import eventually, wait_until
from tests.integration.support.up import Up, broker_epochs, running_up

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    """``raftka up --tls`` with one controller and two brokers (ids 2 and 3)."""
    with running_up(tmp_path_factory.mktemp("up-tls"), ["--tls"]) as cluster:
        yield cluster


def tls_files(up: Up) -> TlsFiles:
    files = read_tls_files(up.directory)
    assert files is not None, "cluster.json of a --tls cluster records its TLS files"
    return files


def ok(result: Any) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return str(result.stdout)


def test_commands_use_the_tls_files_of_cluster_json_or_options(up: Up) -> None:
    files = tls_files(up)
    for path in (files.ca_file, files.cert_file, files.key_file):
        assert Path(path).is_file() and path in up.text, "raftka up says where each file is"
    assert "TLS:" in up.text and "ssl.certificate.location" in up.text
    ok(up.raftka("topics", "create", "secure", "--partitions", "1", "--replication-factor", "2"))
    assert "secure" in ok(up.raftka("topics", "list")).split()

    # Without cluster.json: plaintext is refused by the TLS listener; the options work.
    elsewhere = {**up.env, "RAFTKA_CLUSTER_DIR": str(up.cwd / "no-cluster-here")}
    controllers = str(read_cluster_file(up.directory)["bootstrap_controller"])
    args = ("topics", "list", "--bootstrap-controller", controllers, "--timeout", "3")
    assert up.raftka(*args, env=elsewhere).returncode == 1
    options = ("--ca-file", files.ca_file, "--cert-file", files.cert_file)
    assert "secure" in ok(up.raftka(*args, *options, "--key-file", files.key_file, env=elsewhere))
    by_env = {
        **elsewhere,
        "RAFTKA_CA_FILE": files.ca_file,
        "RAFTKA_CERT_FILE": files.cert_file,
        "RAFTKA_KEY_FILE": files.key_file,
    }
    assert "secure" in ok(up.raftka(*args, env=by_env)).split()

    produced = up.raftka("produce", "secure", stdin="a\nb\nc\n")
    assert "produced 3 records" in produced.stderr, produced.stderr
    consumed = up.raftka(
        "consume", "secure", "--from-beginning", "--max-messages", "3", "--group", "readers"
    )
    assert ok(consumed).splitlines() == ["a", "b", "c"]
    assert "readers" in ok(up.raftka("groups", "list"))


def test_users_and_bearer_tokens(up: Up, tmp_path: Path) -> None:
    password, wrong = tmp_path / "alice.pw", tmp_path / "wrong.pw"
    password.write_text("correct horse\n")
    wrong.write_text("battery staple\n")
    ok(up.raftka("users", "add", "alice", "--password-file", str(password)))
    ok(
        up.raftka(
            "users", "add", "alice", "--password-file", str(password),
            "--mechanism", "SCRAM-SHA-256", "--iterations", "4096",
        )
    )  # fmt: skip
    rows = users(up)
    assert rows == [
        ["USER", "MECHANISM", "ITERATIONS"],
        ["alice", "SCRAM-SHA-256", "4096"],
        ["alice", "SCRAM-SHA-512", "8192"],
    ]
    refused = up.raftka("users", "add", "bob", "--password", "hunter2")
    assert refused.returncode == 2 and "--password-file" in refused.stderr
    ok(up.raftka("topics", "create", "tokens", "--partitions", "1"))
    ok(up.raftka("acls", "add", "--allow-principal", "User:alice", "--operation", "write",
                 "--topic", "tokens"))  # fmt: skip

    # The Python client: a token, plus a client certificate since the listeners require mTLS;
    # the token names the principal (User:alice), whose only right is WRITE on "tokens".
    files = tls_files(up)
    settings: dict[str, Any] = {
        "bootstrap_servers": str(read_cluster_file(up.directory)["bootstrap_servers"]).split(","),
        "security_protocol": "SASL_SSL",
        "ssl_ca_location": files.ca_file,
        "ssl_certificate_location": files.cert_file,
        "ssl_key_location": files.key_file,
        "sasl_username": "alice",
    }

    async def produce(secret: str) -> int:
        async with AsyncProducer(**settings, sasl_password=secret) as producer:
            return (await (await producer.send("tokens", b"by alice"))).offset

    async def accepted() -> int | None:
        try:  # brokers learn the new credential from the metadata log
            return await produce("correct horse")
        except AuthenticationFailedError:
            return None

    assert asyncio.run(eventually(accepted, what="alice's token accepted")) == 0
    with pytest.raises(AuthenticationFailedError, match="alice"):
        asyncio.run(produce("battery staple"))

    # The CLI: the token from the environment, CA and certificate from cluster.json.
    as_alice = {**up.env, "RAFTKA_TOKEN_USER": "alice", "RAFTKA_TOKEN_PASSWORD_FILE": str(password)}
    produced = up.raftka("produce", "tokens", stdin="x\n", env=as_alice)
    assert "produced 1 records" in produced.stderr, produced.stderr
    bad = up.raftka(
        "produce", "tokens", stdin="x\n", env={**as_alice, "RAFTKA_TOKEN_PASSWORD_FILE": str(wrong)}
    )
    assert bad.returncode == 1 and "alice" in bad.stderr, bad.stderr
    denied = up.raftka("topics", "create", "not-alices", env=as_alice)
    assert denied.returncode == 1 and "User:alice" in denied.stdout + denied.stderr

    ok(up.raftka("users", "remove", "alice", "--mechanism", "SCRAM-SHA-256"))
    assert ["alice", "SCRAM-SHA-256", "4096"] not in users(up)
    assert "removed every credential of alice" in ok(up.raftka("users", "remove", "alice"))
    assert users(up) == [["USER", "MECHANISM", "ITERATIONS"]]


def users(up: Up) -> list[list[str]]:
    """``raftka users list``'s rows, without the Kafka clients' ``admin`` that ``raftka up
    --tls`` makes (ops/kafka_access.py)."""
    rows = [line.split() for line in ok(up.raftka("users", "list")).splitlines()]
    assert ["admin", "SCRAM-SHA-512", "8192"] in rows
    return [row for row in rows if row[0] != "admin"]


def test_a_killed_tls_node_restarts_with_its_certificate(up: Up) -> None:
    before = broker_epochs(up.directory)[3]
    ok(up.node("kill", "3"))
    wait_until(lambda: up.nodes()[3].get("exit") is not None, "cluster.json records the exit")
    ok(up.node("restart", "3"))
    wait_until(lambda: broker_epochs(up.directory).get(3, -1) > before,
               "broker 3 registers again over mTLS", timeout_s=30)  # fmt: skip
    assert up.nodes()[3]["incarnation"] == 2


def test_kafka_clients_log_in_with_the_printed_settings(up: Up) -> None:
    """``raftka up --tls`` opens SASL_SSL Kafka listeners and prints how to reach them; the
    password stays in its file."""
    (line,) = [x for x in up.text.splitlines() if x.startswith("Kafka clients")]
    settings = dict(item.split("=", 1) for item in line.split(": ", 1)[1].split())
    assert settings["security.protocol"] == "SASL_SSL" and settings["sasl.username"] == "admin"
    password_file = up.directory / "tls" / "kafka-admin.password"
    assert password_file.stat().st_mode & 0o077 == 0
    password = password_file.read_text().splitlines()[0]
    assert password not in up.text
    admin = AdminClient({**settings, "sasl.password": password})

    def listed() -> bool:
        try:
            return len(admin.list_topics(timeout=2).brokers) == 2
        except KafkaException:
            return False

    wait_until(listed, "confluent-kafka logs in as admin over SASL_SSL")
