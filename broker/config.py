"""A broker node's configuration (the ``[broker]`` table of a node's TOML file)."""

from __future__ import annotations

from dataclasses import dataclass

from raftka.broker.kafka.security_config import check_kafka_security_keys
from raftka.common.config import check_host_port
from raftka.common.errors import ConfigFileError
from raftka.common.metadata.model import (
    CLIENT_LISTENER,
    INTERNAL_LISTENER,
    KAFKA_LISTENER,
    BrokerEndpoint,
)


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    listen: str = "127.0.0.1:9092"
    """Address of the CLIENT listener, which clients use (and other brokers too when there is
    no ``internal_listen``)."""
    advertised_host: str = ""
    """Host clients should use; defaults to the host of ``listen``."""
    internal_listen: str = ""
    """Address of the INTERNAL listener, which other brokers dial (replication fetches,
    transaction markers, transactional-write checks), under ``security.internal_client_auth``;
    empty: none, ``listen`` serves both (see raftka.common.security.listeners)."""
    internal_advertised_host: str = ""
    """Host other brokers should use for ``internal_listen``; defaults to its host."""
    kafka_listen: str = ""
    """Address of the Kafka wire-protocol listener (docs/kafka-protocol.md), for Kafka's own
    clients; empty: none. Its security is ``kafka_security_protocol``."""
    kafka_security_protocol: str = ""
    """``PLAINTEXT``, ``SSL`` (TLS with the node's certificate; the principal is the client
    certificate's under ``security.client_auth``) or ``SASL_SSL`` (TLS, then SASL with
    ``kafka_sasl_mechanisms``). Empty: ``SASL_SSL`` when the node has TLS, else ``PLAINTEXT``.
    ``SASL_PLAINTEXT`` is refused (passwords or their proofs in clear), and so is a
    ``PLAINTEXT`` listener on a node with TLS or require_authentication."""
    kafka_ssl_client_auth: str = ""
    """Client certificates on the Kafka listener (Kafka's per-listener ssl.client.auth):
    ``required``, ``requested`` (asked for, not required: Python's ssl can), ``none``; empty:
    ``security.client_auth``. ``none`` with SASL_SSL lets Kafka clients come with a user and
    password only while the gRPC listeners require certificates."""
    kafka_sasl_mechanisms: str = "SCRAM-SHA-512,SCRAM-SHA-256,PLAIN"
    """The SASL mechanisms a ``SASL_SSL`` Kafka listener offers (comma-separated), each
    checked against the users' stored SCRAM credentials."""
    kafka_max_request_bytes: int = 16 * 1024 * 1024
    """The largest Kafka request accepted; a larger size prefix closes the connection before
    any of it is read (Kafka's socket.request.max.bytes; clients send at most 1 MB by
    default)."""
    kafka_request_read_timeout_ms: int = 10_000
    """How long one Kafka request may take to arrive once its first byte has (slow clients
    are disconnected)."""
    kafka_connections_max_idle_ms: int = 600_000
    """A Kafka connection that sends nothing for this long is closed (Kafka's
    connections.max.idle.ms)."""
    kafka_max_in_flight: int = 16
    """Requests of one Kafka connection read ahead and served at once; reading stops there
    until an answer is sent."""
    kafka_fetch_sendfile: bool = True
    """Fetch answers send records from the segment files to the socket with ``sendfile``
    (zero copy); false: read into memory and sent from there (the buffered path)."""
    rack: str = ""
    """Rack name for rack-aware replica placement; empty for none."""
    controllers: str = ""
    """Controller addresses ``host:port,...`` to register with; defaults to the addresses in
    ``controller.voters`` when that is set."""
    heartbeat_interval_ms: int = 500
    """How often the broker heartbeats to the active controller (Kafka: 2000)."""
    fsync_every_batch: bool = False
    """fsync every produced batch before acknowledging it (group commit when several wait).
    Off by default: like Kafka, durability comes from replication."""
    retention_check_interval_ms: int = 300_000
    """How often old segments are deleted by retention.ms / retention.bytes (Kafka's default)."""
    controlled_shutdown_timeout_ms: int = 30_000
    """On SIGTERM, how long to wait for the controller to move leadership away."""
    replica_lag_time_max_ms: int = 30_000
    """A follower that has not caught up with the leader for this long leaves the ISR
    (Kafka's replica.lag.time.max.ms)."""
    scrub_bytes_per_second: int = 1 << 20
    """How fast the background scrubber re-reads the partition logs to verify every batch
    (CRC-32C, framing, no missing offsets); 0 turns it off. Damage it finds is reported and
    repaired from an in-sync replica, like damage a read meets."""
    log_cleaner_enable: bool = True
    """Run the log cleaner, which compacts topics whose cleanup.policy includes compact
    (Kafka's log.cleaner.enable)."""
    log_cleaner_backoff_ms: int = 15_000
    """How long the cleaner waits when no log needs cleaning (Kafka's log.cleaner.backoff.ms)."""
    log_cleaner_io_max_bytes_per_second: int = 0
    """How fast the cleaner may read and write segment bytes; 0 is unlimited (Kafka's
    log.cleaner.io.max.bytes.per.second)."""
    offsets_topic_num_partitions: int = 50
    """Partitions of ``__consumer_offsets`` when the group coordinator first creates it
    (Kafka's offsets.topic.num.partitions); groups are spread over them by their id's hash."""
    offsets_topic_replication_factor: int = 3
    """Replicas of each ``__consumer_offsets`` partition, capped at the live brokers when it is
    created (Kafka's offsets.topic.replication.factor)."""
    group_consumer_heartbeat_interval_ms: int = 5_000
    """How often consumer group members heartbeat (Kafka's
    group.consumer.heartbeat.interval.ms)."""
    group_consumer_session_timeout_ms: int = 45_000
    """A member silent for this long is removed, unless it asks for its own timeout (Kafka's
    group.consumer.session.timeout.ms)."""
    transaction_state_num_partitions: int = 50
    """Partitions of ``__transaction_state`` when the transaction coordinator first creates it
    (Kafka's transaction.state.log.num.partitions); transactional ids are spread over them by
    their hash."""
    transaction_state_replication_factor: int = 3
    """Replicas of each ``__transaction_state`` partition, capped at the live brokers when it
    is created (Kafka's transaction.state.log.replication.factor)."""
    transaction_max_timeout_ms: int = 900_000
    """The longest transaction timeout a producer may ask for; InitProducerId with a longer one
    is refused with INVALID_TRANSACTION_TIMEOUT (Kafka's transaction.max.timeout.ms)."""
    transaction_abort_timed_out_transaction_cleanup_interval_ms: int = 10_000
    """The longest the coordinator goes without looking for transactions open longer than
    their timeout, to abort them (Kafka's
    transaction.abort.timed.out.transaction.cleanup.interval.ms). It also wakes at each open
    transaction's own deadline and ticks at least every second, so a timed-out transaction is
    aborted promptly: this setting can only make the checks more frequent."""
    transactional_id_expiration_ms: int = 604_800_000
    """A transactional id with no transaction for this long is forgotten by its coordinator
    (Kafka's transactional.id.expiration.ms, 7 days)."""
    transaction_partition_verification_enable: bool = True
    """Partition leaders ask the transaction coordinator, before a producer's first
    transactional write to a partition in a transaction, whether the partition is in that
    transaction, and refuse the write (TRANSACTION_ABORTABLE) when it is not: such a write
    would open a transaction no marker ever closes (KIP-890 part 1; Kafka's
    transaction.partition.verification.enable). Produce must then name the transactional id
    of transactional batches."""

    def __post_init__(self) -> None:
        check_host_port("broker.listen", self.listen)
        if self.internal_listen:
            check_host_port("broker.internal_listen", self.internal_listen)
        elif self.internal_advertised_host:
            raise ConfigFileError(
                "broker.internal_advertised_host is set but broker.internal_listen is not"
            )
        if self.kafka_listen:
            check_host_port("broker.kafka_listen", self.kafka_listen)
        check_kafka_security_keys(
            self.kafka_security_protocol, self.kafka_sasl_mechanisms, self.kafka_ssl_client_auth
        )
        for name in (
            "kafka_max_request_bytes",
            "kafka_request_read_timeout_ms",
            "kafka_connections_max_idle_ms",
            "kafka_max_in_flight",
            "heartbeat_interval_ms",
            "retention_check_interval_ms",
            "controlled_shutdown_timeout_ms",
            "replica_lag_time_max_ms",
            "log_cleaner_backoff_ms",
            "offsets_topic_num_partitions",
            "offsets_topic_replication_factor",
            "group_consumer_heartbeat_interval_ms",
            "group_consumer_session_timeout_ms",
            "transaction_state_num_partitions",
            "transaction_state_replication_factor",
            "transaction_max_timeout_ms",
            "transaction_abort_timed_out_transaction_cleanup_interval_ms",
            "transactional_id_expiration_ms",
        ):
            if getattr(self, name) <= 0:
                raise ConfigFileError(f"broker.{name} must be positive")
        if self.scrub_bytes_per_second < 0:
            raise ConfigFileError(
                "broker.scrub_bytes_per_second must be 0 (scrubber off) or positive, not "
                f"{self.scrub_bytes_per_second}"
            )
        if self.log_cleaner_io_max_bytes_per_second < 0:
            raise ConfigFileError(
                "broker.log_cleaner_io_max_bytes_per_second must be 0 (unlimited) or positive, "
                f"not {self.log_cleaner_io_max_bytes_per_second}"
            )

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def host(self) -> str:
        return self.advertised_host or self.listen.rpartition(":")[0]

    def endpoints(self) -> list[BrokerEndpoint]:
        """The listeners the broker registers: CLIENT, and INTERNAL and KAFKA when it has
        them."""
        found = [BrokerEndpoint(CLIENT_LISTENER, self.host, self.port)]
        if self.internal_listen:
            host, _, port = self.internal_listen.rpartition(":")
            found.append(
                BrokerEndpoint(INTERNAL_LISTENER, self.internal_advertised_host or host, int(port))
            )
        if self.kafka_listen:
            host, _, port = self.kafka_listen.rpartition(":")
            found.append(BrokerEndpoint(KAFKA_LISTENER, self.advertised_host or host, int(port)))
        return found
