"""The Kafka listener of one broker: an asyncio TCP server speaking Kafka's protocol, off
unless ``broker.kafka_listen`` is set; PLAINTEXT, SSL or SASL_SSL by
``broker.kafka_security_protocol`` (security_config.py, security.py, sasl.py)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog

from raftka.broker.config import BrokerConfig
from raftka.broker.kafka.acls import security_admin_apis
from raftka.broker.kafka.backend import KafkaBackend
from raftka.broker.kafka.classic_group import (
    HEARTBEAT_KEY,
    JOIN_GROUP_KEY,
    LEAVE_GROUP_KEY,
    SYNC_GROUP_KEY,
    HeartbeatHandler,
    JoinGroupHandler,
    LeaveGroupHandler,
    SyncGroupHandler,
)
from raftka.broker.kafka.cluster import DESCRIBE_CLUSTER_KEY, DescribeClusterHandler
from raftka.broker.kafka.configs import (
    ALTER_CONFIGS_KEY,
    DESCRIBE_CONFIGS_KEY,
    INCREMENTAL_ALTER_CONFIGS_KEY,
    AlterConfigsHandler,
    DescribeConfigsHandler,
    IncrementalAlterConfigsHandler,
)
from raftka.broker.kafka.connection import KafkaConnection
from raftka.broker.kafka.consumer_group import (
    CONSUMER_GROUP_DESCRIBE_KEY,
    CONSUMER_GROUP_HEARTBEAT_KEY,
    ConsumerGroupDescribeHandler,
    ConsumerGroupHeartbeatHandler,
)
from raftka.broker.kafka.coordinators import FIND_COORDINATOR_KEY, FindCoordinatorHandler
from raftka.broker.kafka.dispatch import Api, ApiTable
from raftka.broker.kafka.fetch import FETCH_KEY, LIST_OFFSETS_KEY, FetchHandler, ListOffsetsHandler
from raftka.broker.kafka.framing import Limits
from raftka.broker.kafka.group_admin import (
    DELETE_GROUPS_KEY,
    DESCRIBE_GROUPS_KEY,
    LIST_GROUPS_KEY,
    OFFSET_DELETE_KEY,
    DeleteGroupsHandler,
    DescribeGroupsHandler,
    ListGroupsHandler,
    OffsetDeleteHandler,
)
from raftka.broker.kafka.metadata import METADATA_KEY, MetadataHandler
from raftka.broker.kafka.offsets import (
    OFFSET_COMMIT_KEY,
    OFFSET_FETCH_KEY,
    OffsetCommitHandler,
    OffsetFetchHandler,
)
from raftka.broker.kafka.partitions_admin import (
    CREATE_PARTITIONS_KEY,
    ELECT_LEADERS_KEY,
    CreatePartitionsHandler,
    ElectLeadersHandler,
)
from raftka.broker.kafka.produce import (
    INIT_PRODUCER_ID_KEY,
    PRODUCE_KEY,
    InitProducerIdHandler,
    ProduceHandler,
)
from raftka.broker.kafka.reassignments import (
    ALTER_PARTITION_REASSIGNMENTS_KEY,
    LIST_PARTITION_REASSIGNMENTS_KEY,
    AlterPartitionReassignmentsHandler,
    ListPartitionReassignmentsHandler,
)
from raftka.broker.kafka.sasl import SASL_AUTHENTICATE_KEY, SASL_HANDSHAKE_KEY
from raftka.broker.kafka.security import KafkaSecurity
from raftka.broker.kafka.security_config import (
    PLAINTEXT,
    SASL_SSL,
    kafka_security_protocol,
    kafka_tls_settings,
)
from raftka.broker.kafka.topics import (
    CREATE_TOPICS_KEY,
    DELETE_TOPICS_KEY,
    CreateTopicsHandler,
    DeleteTopicsHandler,
)
from raftka.broker.kafka.txn_table import transaction_apis
from raftka.common.security.settings import SecuritySettings
from raftka.common.security_errors import AuthenticationFailedError
from raftka.common.tasks import cancel_and_wait

log = structlog.get_logger(__name__)


async def _served_before_authentication(_request: object, _context: object) -> None:
    raise AssertionError("SaslHandshake and SaslAuthenticate are served by sasl.py")


def sasl_apis(protocol: str) -> list[Api]:
    """SaslHandshake and SaslAuthenticate, on SASL_SSL only (sasl.py answers them)."""
    if protocol != SASL_SSL:
        return []
    return [
        Api(SASL_HANDSHAKE_KEY, "SaslHandshake", 0, 1, _served_before_authentication),
        Api(SASL_AUTHENTICATE_KEY, "SaslAuthenticate", 0, 2, _served_before_authentication),
    ]


def api_table(backend: KafkaBackend, protocol: str = PLAINTEXT) -> ApiTable:
    """Every API the listener serves, at the versions it serves (what ApiVersions tells)."""
    return ApiTable(
        [
            *sasl_apis(protocol),
            *security_admin_apis(backend),
            Api(PRODUCE_KEY, "Produce", 3, 11, ProduceHandler(backend)),
            Api(FETCH_KEY, "Fetch", 4, 12, FetchHandler(backend)),
            Api(LIST_OFFSETS_KEY, "ListOffsets", 1, 6, ListOffsetsHandler(backend)),
            Api(METADATA_KEY, "Metadata", 1, 12, MetadataHandler(backend)),
            Api(CREATE_TOPICS_KEY, "CreateTopics", 2, 7, CreateTopicsHandler(backend)),
            Api(DELETE_TOPICS_KEY, "DeleteTopics", 1, 5, DeleteTopicsHandler(backend)),
            Api(INIT_PRODUCER_ID_KEY, "InitProducerId", 0, 4, InitProducerIdHandler(backend)),
            Api(DESCRIBE_CONFIGS_KEY, "DescribeConfigs", 1, 4, DescribeConfigsHandler(backend)),
            Api(ALTER_CONFIGS_KEY, "AlterConfigs", 0, 2, AlterConfigsHandler(backend)),
            Api(CREATE_PARTITIONS_KEY, "CreatePartitions", 0, 3, CreatePartitionsHandler(backend)),
            Api(ELECT_LEADERS_KEY, "ElectLeaders", 0, 2, ElectLeadersHandler(backend)),
            Api(
                INCREMENTAL_ALTER_CONFIGS_KEY,
                "IncrementalAlterConfigs",
                0,
                1,
                IncrementalAlterConfigsHandler(backend),
            ),
            Api(
                ALTER_PARTITION_REASSIGNMENTS_KEY,
                "AlterPartitionReassignments",
                0,
                0,
                AlterPartitionReassignmentsHandler(backend),
            ),
            Api(
                LIST_PARTITION_REASSIGNMENTS_KEY,
                "ListPartitionReassignments",
                0,
                0,
                ListPartitionReassignmentsHandler(backend),
            ),
            Api(DESCRIBE_CLUSTER_KEY, "DescribeCluster", 0, 2, DescribeClusterHandler(backend)),
            Api(FIND_COORDINATOR_KEY, "FindCoordinator", 0, 5, FindCoordinatorHandler(backend)),
            Api(OFFSET_COMMIT_KEY, "OffsetCommit", 2, 9, OffsetCommitHandler(backend)),
            Api(OFFSET_FETCH_KEY, "OffsetFetch", 1, 9, OffsetFetchHandler(backend)),
            Api(
                CONSUMER_GROUP_DESCRIBE_KEY,
                "ConsumerGroupDescribe",
                0,
                1,
                ConsumerGroupDescribeHandler(backend),
            ),
            Api(JOIN_GROUP_KEY, "JoinGroup", 0, 9, JoinGroupHandler(backend)),
            Api(SYNC_GROUP_KEY, "SyncGroup", 0, 5, SyncGroupHandler(backend)),
            Api(HEARTBEAT_KEY, "Heartbeat", 0, 4, HeartbeatHandler(backend)),
            Api(LEAVE_GROUP_KEY, "LeaveGroup", 0, 5, LeaveGroupHandler(backend)),
            Api(DESCRIBE_GROUPS_KEY, "DescribeGroups", 0, 6, DescribeGroupsHandler(backend)),
            Api(LIST_GROUPS_KEY, "ListGroups", 0, 5, ListGroupsHandler(backend)),
            Api(DELETE_GROUPS_KEY, "DeleteGroups", 0, 2, DeleteGroupsHandler(backend)),
            Api(OFFSET_DELETE_KEY, "OffsetDelete", 0, 0, OffsetDeleteHandler(backend)),
            Api(
                CONSUMER_GROUP_HEARTBEAT_KEY,
                "ConsumerGroupHeartbeat",
                0,
                1,
                ConsumerGroupHeartbeatHandler(backend),
            ),
            *transaction_apis(backend),
        ]
    )


class KafkaListener:
    def __init__(
        self, address: str, apis: ApiTable, limits: Limits, security: KafkaSecurity | None = None
    ) -> None:
        host, _, port = address.rpartition(":")
        self._host = host
        self._port = int(port)
        self._apis = apis
        self._limits = limits
        self._security = security
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        security = self._security
        context = security.ssl_context if security is not None else None
        tls: dict[str, Any] = (
            {"ssl": context, "ssl_handshake_timeout": self._limits.read_timeout_s}
            if context is not None
            else {}
        )
        self._server = await asyncio.start_server(
            self._accept, self._host, self._port, limit=64 * 1024, **tls
        )
        log.info(
            "kafka_listener_started",
            address=f"{self._host}:{self._port}",
            security_protocol=security.protocol if security is not None else PLAINTEXT,
        )

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            auth = None
            if self._security is not None:
                peer = writer.get_extra_info("peername")
                host = peer[0] if isinstance(peer, tuple) else ""
                try:
                    auth = self._security.connection_auth(writer, host)
                except AuthenticationFailedError as e:
                    log.warning(
                        "kafka_connection_closed",
                        peer=host,
                        reason="authentication_failed",
                        error=e.message,
                    )
                    writer.close()
                    return
            await KafkaConnection(reader, writer, self._apis, self._limits, auth).serve()
        except asyncio.CancelledError:
            pass  # stop(): asyncio's stream callback would report a cancelled task as an error
        finally:
            self._connections.discard(task)

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        await cancel_and_wait(list(self._connections))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 2.0)
        log.info("kafka_listener_stopped", address=f"{self._host}:{self._port}")


def check_kafka_security(config: BrokerConfig, security: SecuritySettings) -> None:
    """Refuses (ConfigFileError) a Kafka listener whose security does not hold together with
    the node's (security_config.py)."""
    if config.kafka_listen:
        kafka_security_protocol(config.kafka_security_protocol, security)


def kafka_listener(
    config: BrokerConfig, backend: KafkaBackend, security: SecuritySettings | None = None
) -> KafkaListener:
    settings = security or SecuritySettings()
    protocol = kafka_security_protocol(config.kafka_security_protocol, settings)
    limits = Limits(
        max_request_bytes=config.kafka_max_request_bytes,
        read_timeout_s=config.kafka_request_read_timeout_ms / 1000,
        idle_timeout_s=config.kafka_connections_max_idle_ms / 1000,
        max_in_flight=config.kafka_max_in_flight,
        sendfile=config.kafka_fetch_sendfile,
    )
    listener_security = KafkaSecurity(
        protocol,
        kafka_tls_settings(config.kafka_ssl_client_auth, settings),
        lambda: backend.image().security,
        config.kafka_sasl_mechanisms,
    )
    return KafkaListener(
        config.kafka_listen, api_table(backend, protocol), limits, listener_security
    )
