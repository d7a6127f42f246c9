"""The consumer's settings: Kafka's names and defaults (``ConsumerConfig.java``), validated once.

Python code passes them as keyword arguments (``auto_offset_reset="earliest"``); properties
files and command lines use Kafka's dotted names through :meth:`ConsumerConfig.from_properties`
(``{"auto.offset.reset": "earliest"}``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from raftka.client.properties import from_properties
from raftka.common.errors import InvalidConfigError
from raftka.common.rpc.channels import MAX_MESSAGE_BYTES

OffsetResetPolicy = Literal["earliest", "latest", "none"]
IsolationLevel = Literal["read_uncommitted", "read_committed"]
HeartbeatMode = Literal["stream", "unary"]

OFFSET_RESET_POLICIES: tuple[str, ...] = ("earliest", "latest", "none")
ISOLATION_LEVELS: tuple[str, ...] = ("read_uncommitted", "read_committed")
HEARTBEAT_MODES: tuple[str, ...] = ("stream", "unary")
ASSIGNORS: tuple[str, ...] = ("uniform", "range")
FETCH_MAX_BYTES_LIMIT = MAX_MESSAGE_BYTES - 4 * 1024 * 1024
"""A fetch response must fit in one gRPC message (64 MiB) with room for one oversized batch."""


@dataclass(frozen=True, slots=True)
class ConsumerConfig:
    bootstrap_servers: str | Sequence[str] = ()
    """Broker addresses, ``"host:port,host:port"`` or a list; any one that answers will do."""
    client_id: str = "raftka-consumer"
    security_protocol: str = "PLAINTEXT"
    """PLAINTEXT, SSL (TLS; mTLS with ssl.certificate.location) or SASL_SSL (TLS and a bearer
    token from sasl.username / sasl.password): see raftka.client.security."""
    ssl_ca_location: str = ""
    """PEM CA bundle to trust (default: the system roots)."""
    ssl_certificate_location: str = ""
    """PEM client certificate (mTLS), with ssl.key.location."""
    ssl_key_location: str = ""
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)
    group_id: str | None = None
    """The consumer group: needed by ``subscribe()`` (membership) and by ``commit()`` /
    ``committed()`` (with ``assign()`` the offsets belong to a memberless "simple" group)."""
    enable_auto_commit: bool = True
    """With a group: commit the positions poll() has handed out every
    ``auto_commit_interval_ms``, before partitions are revoked, and on close."""
    auto_commit_interval_ms: int = 5000
    group_instance_id: str | None = None
    """Static membership: a restarted consumer with the same id takes its partitions back
    (close() leaves with epoch -2, so they wait for it until the session timeout)."""
    session_timeout_ms: int = 45000
    """How long the coordinator waits for a silent member before it reassigns its partitions
    (1000 to 3600000; set per member, unlike Kafka, for failover experiments)."""
    max_poll_interval_ms: int = 300000
    """A member that does not call poll() for this long leaves the group (its partitions go to
    the others) and rejoins at its next poll(). Also its time to give partitions up."""
    group_heartbeat_mode: HeartbeatMode = "stream"
    """``stream``: heartbeats on one bidirectional stream, on which the coordinator pushes new
    assignments at once; ``unary``: one call per heartbeat (assignments arrive with the next
    heartbeat)."""
    group_remote_assignor: str | None = None
    """The coordinator's assignor: ``uniform`` (its default) or ``range``."""
    auto_offset_reset: OffsetResetPolicy = "latest"
    """Where to start when there is no position or it is out of range: ``earliest``,
    ``latest`` or ``none`` (raise an error instead)."""
    fetch_min_bytes: int = 1
    fetch_max_bytes: int = 52428800
    fetch_max_wait_ms: int = 500
    max_partition_fetch_bytes: int = 1048576
    max_poll_records: int = 500
    request_timeout_ms: int = 30000
    metadata_max_age_ms: int = 300000
    retry_backoff_ms: int = 100
    isolation_level: IsolationLevel = "read_uncommitted"
    check_crcs: bool = True

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def bootstrap_addresses(self) -> tuple[str, ...]:
        return _split_servers(self.bootstrap_servers)

    @classmethod
    def from_properties(cls, properties: Mapping[str, object]) -> ConsumerConfig:
        """Build from Kafka's dotted names (``"fetch.max.wait.ms": "100"``); values may be
        strings, as read from a properties file. Python names are accepted too."""
        return from_properties(cls, properties, "consumer")


def _split_servers(value: str | Sequence[str]) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(s.strip() for s in items if isinstance(s, str) and s.strip())


def _validate(c: ConsumerConfig) -> None:
    servers = c.bootstrap_servers
    if not isinstance(servers, str) and not (
        isinstance(servers, Sequence) and all(isinstance(s, str) for s in servers)
    ):
        raise InvalidConfigError(
            f"bootstrap_servers must be 'host:port[,host:port]' or a list of them, not {servers!r}"
        )
    addresses = _split_servers(servers)
    if not addresses:
        raise InvalidConfigError(
            "bootstrap_servers is required: one or more broker addresses, e.g. "
            "bootstrap_servers='127.0.0.1:9092' (`raftka up` prints them)"
        )
    for address in addresses:
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise InvalidConfigError(
                f"bootstrap_servers: {address!r} is not host:port (e.g. 127.0.0.1:9092)"
            )
    _choice("auto_offset_reset", c.auto_offset_reset, OFFSET_RESET_POLICIES)
    _choice("isolation_level", c.isolation_level, ISOLATION_LEVELS)
    _choice("group_heartbeat_mode", c.group_heartbeat_mode, HEARTBEAT_MODES)
    if c.group_remote_assignor is not None:
        _choice("group_remote_assignor", c.group_remote_assignor, ASSIGNORS)
    if not isinstance(c.enable_auto_commit, bool):
        raise InvalidConfigError(
            f"enable_auto_commit must be True or False, not {c.enable_auto_commit!r}"
        )
    if c.group_instance_id is not None and (
        not isinstance(c.group_instance_id, str) or not c.group_instance_id
    ):
        raise InvalidConfigError(
            f"group_instance_id must be a non-empty string or None, not {c.group_instance_id!r}"
        )
    if c.group_instance_id is not None and c.group_id is None:
        raise InvalidConfigError("group_instance_id needs a group_id (static group membership)")
    _at_least("auto_commit_interval_ms", c.auto_commit_interval_ms, 1)
    _at_least("session_timeout_ms", c.session_timeout_ms, 1000)
    if c.session_timeout_ms > 3600000:
        raise InvalidConfigError(
            f"session_timeout_ms must be at most 3600000 (an hour), not {c.session_timeout_ms}"
        )
    _at_least("max_poll_interval_ms", c.max_poll_interval_ms, 1)
    if not isinstance(c.client_id, str):
        raise InvalidConfigError(f"client_id must be a string, not {c.client_id!r}")
    if c.group_id is not None and (not isinstance(c.group_id, str) or not c.group_id):
        raise InvalidConfigError(f"group_id must be a non-empty string or None, not {c.group_id!r}")
    if not isinstance(c.check_crcs, bool):
        raise InvalidConfigError(f"check_crcs must be True or False, not {c.check_crcs!r}")
    _at_least("fetch_min_bytes", c.fetch_min_bytes, 0)
    _at_least("fetch_max_bytes", c.fetch_max_bytes, 1)
    _at_least("fetch_max_wait_ms", c.fetch_max_wait_ms, 0)
    _at_least("max_partition_fetch_bytes", c.max_partition_fetch_bytes, 1)
    _at_least("max_poll_records", c.max_poll_records, 1)
    _at_least("request_timeout_ms", c.request_timeout_ms, 1)
    _at_least("metadata_max_age_ms", c.metadata_max_age_ms, 0)
    _at_least("retry_backoff_ms", c.retry_backoff_ms, 0)
    for name, value in (
        ("fetch_max_bytes", c.fetch_max_bytes),
        ("max_partition_fetch_bytes", c.max_partition_fetch_bytes),
    ):
        if value > FETCH_MAX_BYTES_LIMIT:
            raise InvalidConfigError(
                f"{name} is {value}; at most {FETCH_MAX_BYTES_LIMIT} (a fetch response travels "
                f"as one gRPC message of at most {MAX_MESSAGE_BYTES} bytes)"
            )


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InvalidConfigError(
            f"{name} must be one of {', '.join(repr(a) for a in allowed)}, not {value!r}"
        )


def _at_least(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidConfigError(f"{name} must be an integer, not {value!r}")
    if value < minimum:
        raise InvalidConfigError(f"{name} must be at least {minimum}, not {value}")
