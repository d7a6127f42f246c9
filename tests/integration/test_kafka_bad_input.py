"""Bad input on the Kafka listener of a real broker: a size prefix over the limit (1 GB), a
truncated frame, an unknown API key, a version not served, a slow-loris client. Each closes
that connection with a log line naming why, and the broker keeps answering another client
(ApiVersions over a fresh connection, and kafka-python's metadata)."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import pytest

from raftka.ops.local_cluster import LocalCluster
from tests.conditions import wait_until
from tests.integration.support.brokers import (
    log_events,
    start_broker_cluster,
    stop_broker_cluster,
)

pytestmark = pytest.mark.integration

READ_TIMEOUT_MS = 1_000


@pytest.fixture(scope="module")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = start_broker_cluster(
        tmp_path_factory.mktemp("kafka-bad"),
        controllers=1,
        brokers=1,
        kafka=True,
        broker_settings={"kafka_request_read_timeout_ms": READ_TIMEOUT_MS},
    )
    try:
        yield c
    finally:
        stop_broker_cluster(c)


def connect(cluster: LocalCluster) -> socket.socket:
    host, _, port = cluster.kafka_bootstrap_servers[0].rpartition(":")
    return socket.create_connection((host, int(port)), timeout=10)


def request(api_key: int, version: int, correlation_id: int, body: bytes = b"") -> bytes:
    """A request with header v1 (API key, version, correlation id, client id "t")."""
    payload = struct.pack(">hhih", api_key, version, correlation_id, 1) + b"t" + body
    return struct.pack(">i", len(payload)) + payload


def closed_by_broker(sock: socket.socket, timeout_s: float = 10.0) -> bool:
    """Whether the broker closes the connection (EOF) within ``timeout_s``."""
    sock.settimeout(timeout_s)
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def still_serves(cluster: LocalCluster) -> None:
    """ApiVersions v0 on a new connection gets its answer."""
    with connect(cluster) as sock:
        sock.sendall(request(18, 0, 77))
        size = struct.unpack(">i", sock.recv(4))[0]
        body = b""
        while len(body) < size:
            body += sock.recv(size - len(body))
        correlation_id, error = struct.unpack_from(">ih", body)
        assert (correlation_id, error) == (77, 0)


def closed_reasons(cluster: LocalCluster) -> list[object]:
    (broker_id,) = cluster.brokers
    return [e.get("reason") for e in log_events(cluster, broker_id, "kafka_connection_closed")]


def wait_reason(cluster: LocalCluster, reason: str) -> None:
    wait_until(
        lambda: reason in closed_reasons(cluster),
        f"kafka_connection_closed reason={reason} logged",
        timeout_s=10,
    )


def test_a_1gb_size_prefix_is_refused_before_reading(kafka_cluster: LocalCluster) -> None:
    with connect(kafka_cluster) as sock:
        sock.sendall(struct.pack(">i", 1 << 30) + b"\0" * 64)
        assert closed_by_broker(sock)
    wait_reason(kafka_cluster, "bad_size")
    still_serves(kafka_cluster)


def test_a_truncated_frame_closes_the_connection(kafka_cluster: LocalCluster) -> None:
    with connect(kafka_cluster) as sock:
        sock.sendall(request(18, 0, 1)[:-3])
        sock.shutdown(socket.SHUT_WR)
        assert closed_by_broker(sock)
    wait_reason(kafka_cluster, "truncated")
    still_serves(kafka_cluster)


@pytest.mark.parametrize(("api_key", "version"), [(999, 0), (3, 99), (0, 0)])
def test_an_api_or_version_not_served_closes_the_connection(
    kafka_cluster: LocalCluster, api_key: int, version: int
) -> None:
    before = closed_reasons(kafka_cluster).count("unsupported_api")
    with connect(kafka_cluster) as sock:
        sock.sendall(request(api_key, version, 5))
        assert closed_by_broker(sock)
    wait_until(
        lambda: closed_reasons(kafka_cluster).count("unsupported_api") > before,
        "kafka_connection_closed reason=unsupported_api logged",
        timeout_s=10,
    )
    still_serves(kafka_cluster)


def test_a_newer_api_versions_is_answered_unsupported_at_v0(kafka_cluster: LocalCluster) -> None:
    with connect(kafka_cluster) as sock:
        sock.sendall(request(18, 99, 9))
        size = struct.unpack(">i", sock.recv(4))[0]
        body = sock.recv(size)
        correlation_id, error = struct.unpack_from(">ih", body)
        assert (correlation_id, error) == (9, 35)  # UNSUPPORTED_VERSION


def test_a_slow_loris_is_cut_off_at_the_read_deadline(kafka_cluster: LocalCluster) -> None:
    with connect(kafka_cluster) as sock:
        started = time.monotonic()
        frame = request(18, 0, 3)
        sock.sendall(frame[:6])  # a size and a little: then nothing more
        assert closed_by_broker(sock, timeout_s=READ_TIMEOUT_MS / 1000 + 5)
        assert time.monotonic() - started >= READ_TIMEOUT_MS / 1000 * 0.9
    wait_reason(kafka_cluster, "read_timeout")
    still_serves(kafka_cluster)


def test_a_request_that_does_not_parse_closes_the_connection(kafka_cluster: LocalCluster) -> None:
    with connect(kafka_cluster) as sock:
        # Metadata v1 whose topic array claims 1000 topics and holds none.
        sock.sendall(request(3, 1, 4, struct.pack(">i", 1000)))
        assert closed_by_broker(sock)
    wait_reason(kafka_cluster, "malformed_request")
    still_serves(kafka_cluster)
