"""Producer settings: Kafka's names (with ``_`` for ``.``) and Kafka's defaults, checked once."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from raftka.client.properties import from_properties
from raftka.common.errors import InvalidConfigError
from raftka.common.records.batch import Compression

Partitioner = Callable[[str, bytes | None, bytes | None, int], int]
"""A custom partitioner: (topic, key, value, partition count) -> partition."""

INT32_MAX = 2**31 - 1
ACKS = {"all": -1, "-1": -1, "1": 1, "0": 0}
COMPRESSION = {
    "none": Compression.NONE,
    "gzip": Compression.GZIP,
    "snappy": Compression.SNAPPY,
    "lz4": Compression.LZ4,
    "zstd": Compression.ZSTD,
}


@dataclass(frozen=True, slots=True)
class ProducerConfig:
    bootstrap_servers: Sequence[str] = ()
    """Broker addresses ``host:port`` to learn the cluster from."""
    client_id: str = ""
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
    acks: int | str = "all"
    """0 (do not wait), 1 (the leader wrote it), all / -1 (every in-sync replica has it)."""
    enable_idempotence: bool | None = None
    """Retries never duplicate or reorder records (needs acks=all, max_in_flight <= 5).
    Unset: on, unless acks or max_in_flight_requests_per_connection rule it out (as in
    Kafka); set to True with such settings, it is an error."""
    retries: int = INT32_MAX
    retry_backoff_ms: int = 100
    retry_backoff_max_ms: int = 1000
    batch_size: int = 262_144
    """Bytes of records per partition batch before it is sent without waiting for linger.
    Kafka's default is 16 KiB; Raftka's is 256 KiB because a Python broker's cost is per
    request, not per byte (docs/client.md has the measurements). Memory is reserved per
    record, so a large batch_size costs nothing while batches are small."""
    linger_ms: int = 5
    """How long a batch waits for more records while a request to its partition's leader is
    in flight (Kafka 4.0's default). A batch whose leader has nothing of this producer in
    flight is sent at once (see linger_when_idle): a lone record does not wait, and records
    batch up while an earlier request is on its way, for up to linger_ms or until that
    request is answered, whichever comes first."""
    linger_when_idle: bool = False
    """True: every batch waits linger_ms (or until full), even when nothing is in flight to
    its leader, as Kafka's Java client does. False (the default): a batch goes at once when
    its leader is idle, so low-rate latency is one round trip, not a linger plus one."""
    delivery_timeout_ms: int = 120_000
    """Upper bound from send() to success or failure, retries included."""
    request_timeout_ms: int = 30_000
    max_in_flight_requests_per_connection: int = 5
    buffer_memory: int = 32 * 1024 * 1024
    """Bytes of unsent records the producer holds before send() blocks."""
    max_block_ms: int = 60_000
    """How long send() waits for buffer memory or topic metadata before failing."""
    max_request_size: int = 1024 * 1024
    compression_type: str = "none"
    """none, gzip, lz4 or zstd, applied per batch."""
    metadata_max_age_ms: int = 300_000
    metadata_watch_controllers: Sequence[str] = ()
    """Controller addresses: when given, metadata is refreshed as soon as the controllers
    commit a change (WatchMetadata), not only on errors and every metadata_max_age_ms."""
    partitioner: Partitioner | None = field(default=None, compare=False)
    """Overrides the default (murmur2 for keys, uniform sticky for null keys)."""
    transactional_id: str | None = None
    """Makes the producer transactional (init_transactions(), begin/commit/abort): writes to
    several partitions, and consumer offsets, become visible together or not at all. The id
    must be stable across restarts of the same logical producer: a new instance with the same
    id fences the old one and aborts what it left open. Implies idempotence and acks=all."""
    transaction_timeout_ms: int = 60_000
    """The longest a transaction may stay open before the coordinator aborts it."""

    def __post_init__(self) -> None:
        if str(self.acks) not in ACKS:
            raise InvalidConfigError(f"acks: expected all, -1, 1 or 0, got {self.acks!r}")
        if self.compression_type not in COMPRESSION:
            raise InvalidConfigError(
                f"compression_type: expected one of {', '.join(COMPRESSION)}, "
                f"got {self.compression_type!r}"
            )
        for name in (
            "batch_size",
            "request_timeout_ms",
            "delivery_timeout_ms",
            "buffer_memory",
            "max_request_size",
            "max_in_flight_requests_per_connection",
            "metadata_max_age_ms",
        ):
            if getattr(self, name) <= 0:
                raise InvalidConfigError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("linger_ms", "retries", "retry_backoff_ms", "max_block_ms"):
            if getattr(self, name) < 0:
                raise InvalidConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.retry_backoff_max_ms < self.retry_backoff_ms:
            raise InvalidConfigError("retry_backoff_max_ms must be >= retry_backoff_ms")
        if self.delivery_timeout_ms < self.linger_ms + self.request_timeout_ms:
            raise InvalidConfigError(
                f"delivery_timeout_ms ({self.delivery_timeout_ms}) must be at least "
                f"linger_ms + request_timeout_ms ({self.linger_ms + self.request_timeout_ms})"
            )
        if self.transactional_id is not None:
            self._check_transactional()
        if self.enable_idempotence:
            if self.acks_value != -1:
                raise InvalidConfigError(
                    "enable_idempotence needs acks=all: set acks='all' or enable_idempotence=False"
                )
            if self.max_in_flight_requests_per_connection > 5:
                raise InvalidConfigError(
                    "enable_idempotence allows at most 5 in-flight requests per connection"
                )
            if self.retries == 0:
                raise InvalidConfigError("enable_idempotence needs retries > 0")

    def _check_transactional(self) -> None:
        tid = self.transactional_id or ""
        if not 1 <= len(tid.encode("utf-8")) <= 249:
            raise InvalidConfigError(
                f"transactional_id must be 1 to 249 bytes of UTF-8, got {tid!r}"
            )
        if self.enable_idempotence is False:
            raise InvalidConfigError(
                "a transactional producer is idempotent: drop enable_idempotence=False "
                "or the transactional_id"
            )
        if self.acks_value != -1:
            raise InvalidConfigError(
                f"a transactional producer needs acks='all' (got acks={self.acks!r}): "
                "set acks='all' or drop the transactional_id"
            )
        if self.transaction_timeout_ms <= 0:
            raise InvalidConfigError(
                f"transaction_timeout_ms must be positive, got {self.transaction_timeout_ms}"
            )

    @property
    def transactional(self) -> bool:
        return self.transactional_id is not None

    @property
    def idempotent(self) -> bool:
        if self.transactional_id is not None:
            return True
        if self.enable_idempotence is not None:
            return self.enable_idempotence
        return (
            self.acks_value == -1
            and self.max_in_flight_requests_per_connection <= 5
            and self.retries > 0
        )

    @property
    def acks_value(self) -> int:
        return ACKS[str(self.acks)]

    @property
    def compression(self) -> Compression:
        return COMPRESSION[self.compression_type]

    @classmethod
    def from_properties(cls, props: Mapping[str, object], **overrides: Any) -> ProducerConfig:
        """Build from Kafka-style names (``{"linger.ms": "10", "acks": "1"}``); unknown names
        are errors, so a typo never silently falls back to a default."""
        return from_properties(cls, props, "producer", **overrides)
