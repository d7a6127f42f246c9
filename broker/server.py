"""One broker role: partition logs, metadata following, lifecycle and the BrokerService.

Start-up: open (and recover) the partition logs, follow the metadata log, register with the
controllers, serve. The broker starts fenced and is unfenced once it has caught up with the
metadata log. ``shutdown()`` is a controlled shutdown: the controller moves leadership away
first, then the service stops and the logs are flushed and closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import structlog
from prometheus_client import CollectorRegistry

from raftka.broker.config import BrokerConfig
from raftka.broker.coordinator.internal_log import ReplicatedInternalLog
from raftka.broker.coordinator.internal_topic import InternalTopic
from raftka.broker.groups.api import GroupConfig
from raftka.broker.groups.offsets_log import ReplicatedOffsetsLog
from raftka.broker.groups.offsets_topic import OffsetsTopic
from raftka.broker.groups.runtime import GroupCoordinator
from raftka.broker.groups.service import GroupServicer
from raftka.broker.groups.shard import ConsumerGroupShard
from raftka.broker.io_threads import IoThreads
from raftka.broker.lifecycle import BrokerLifecycle
from raftka.broker.log.cleaner import LogCleaner, run_cleaner_passes
from raftka.broker.log.manager import CREATE_THREADS, LogManager
from raftka.broker.log.retention import (
    DELETED_FILES_CHECK_INTERVAL_MS,
    apply_retention,
    remove_deleted_segments,
)
from raftka.broker.log.scrubber import Scrubber, run_scrubber
from raftka.broker.metadata_follower import MetadataFollower
from raftka.broker.metrics import (
    BrokerCollector,
    BrokerView,
    CommittedOffset,
    HostedLog,
    TopicTraffic,
)
from raftka.broker.producers.id_blocks import ProducerIdBlock, ProducerIdManager
from raftka.broker.replica_manager import ReplicaManager
from raftka.broker.service import BrokerServicer
from raftka.broker.transactions.api import TRANSACTION_STATE_TOPIC, TopicPartition, TxnConfig
from raftka.broker.transactions.marker_sender import MarkerSender
from raftka.broker.transactions.marker_transport import (
    BrokerChannels,
    GrpcMarkerTransport,
    ImageMarkerRouting,
)
from raftka.broker.transactions.marker_writer import MarkerWriter
from raftka.broker.transactions.runtime import DEFAULT_TICK_INTERVAL_MS as TXN_TICK_INTERVAL_MS
from raftka.broker.transactions.runtime import TransactionCoordinator
from raftka.broker.transactions.service import TransactionServicer
from raftka.broker.transactions.shard import TransactionShard
from raftka.broker.transactions.verification import TxnWriteVerifier
from raftka.broker.transactions.verification_transport import CoordinatorVerification
from raftka.common.clock import wall_clock_ms
from raftka.common.data_dir import PARTITION_LOGS_DIR, check_data_dir
from raftka.common.errors import CoordinatorLoadInProgressError
from raftka.common.fault_service import add_fault_service
from raftka.common.faults import FAULTS
from raftka.common.metadata.records import endpoints_to_proto
from raftka.common.rpc.channels import add_listeners, new_server
from raftka.common.rpc.controller_client import ControllerClient
from raftka.common.rpc.fetch_wire import FETCH_CODEC
from raftka.common.rpc.health import NodeHealth
from raftka.common.rpc.produce_wire import PRODUCE_CODEC
from raftka.common.rpc.registration import add_servicer
from raftka.common.security.authentication import authentication_interceptor
from raftka.common.security.guard import guard_for
from raftka.common.security.inter_node import inter_node_interceptors
from raftka.common.security.listeners import BROKER_KEYS, plan_listeners
from raftka.common.security.settings import SecuritySettings
from raftka.common.tasks import cancel_and_wait
from raftka.v1 import broker_pb2, broker_pb2_grpc, groups_pb2_grpc, transactions_pb2_grpc

if TYPE_CHECKING:
    from raftka.broker.kafka.listener import KafkaListener

log = structlog.get_logger(__name__)


class BrokerServer:
    """The broker role of node ``node_id``: partition logs under ``data_dir``, and the
    controllers it registers with at ``controller_addresses``."""

    def __init__(
        self,
        node_id: int,
        data_dir: Path,
        config: BrokerConfig,
        controller_addresses: Sequence[str],
        security: SecuritySettings | None = None,
        *,
        registry: CollectorRegistry | None = None,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    ) -> None:
        """``registry``: the node's metrics registry (a private one when None);
        ``interceptors``: run around every call this role's server takes."""
        self.config = config
        self.security = security or SecuritySettings()
        if config.kafka_listen:
            # Imported only where a Kafka listener is configured: its protocol library costs
            # a node about a third of a second of start-up.
            from raftka.broker.kafka.listener import check_kafka_security

            check_kafka_security(config, self.security)
        self.kafka: KafkaListener | None = None
        self._whole = False
        # CLIENT (broker.listen) and, if set, INTERNAL (broker.internal_listen): checked here,
        # before anything starts, so a configuration that would lock nodes out is refused.
        self.listeners = plan_listeners(
            self.security, BROKER_KEYS, client=config.listen, internal=config.internal_listen
        )
        self.registry = registry if registry is not None else CollectorRegistry()
        self.traffic = TopicTraffic(self.registry)
        self.data_dir = data_dir
        self.broker_id = node_id
        self.cluster_id = check_data_dir(data_dir, node_id).cluster_id
        self.controller_addresses = list(controller_addresses)
        self.client = ControllerClient(controller_addresses, timeout_s=10.0, attempt_timeout_s=2.0)
        self.follower = MetadataFollower(self.client)
        self.lifecycle = BrokerLifecycle(
            controller_addresses,
            broker_id=self.broker_id,
            cluster_id=self.cluster_id,
            listeners=endpoints_to_proto(config.endpoints()),
            rack=config.rack,
            heartbeat_interval_s=config.heartbeat_interval_ms / 1000,
            follower=self.follower,
        )
        self.logs: LogManager | None = None
        self.replicas: ReplicaManager | None = None
        self.servicer: BrokerServicer | None = None
        self.groups: GroupCoordinator | None = None
        self.transactions: TransactionCoordinator | None = None
        self.offsets_topic = OffsetsTopic(
            lambda: self.follower.image,
            self.client,
            partitions=config.offsets_topic_num_partitions,
            replication_factor=config.offsets_topic_replication_factor,
        )
        self.transaction_topic = InternalTopic(
            lambda: self.follower.image,
            self.client,
            name=TRANSACTION_STATE_TOPIC,
            partitions=config.transaction_state_num_partitions,
            replication_factor=config.transaction_state_replication_factor,
        )
        self.marker_transport: GrpcMarkerTransport | None = None
        # Channels to other brokers: markers, and the leaders' checks of transactional writes.
        self.broker_channels = BrokerChannels(lambda: self.follower.image)
        self.txn_writes = (
            TxnWriteVerifier(
                CoordinatorVerification(
                    self.transaction_topic,
                    self.broker_channels,
                    broker_id=self.broker_id,
                    local=self,
                )
            )
            if config.transaction_partition_verification_enable
            else None
        )
        # Authorization (ACLs from the followed image); inter-node RPCs need CLUSTER_ACTION.
        self.guard = guard_for(
            self.security,
            lambda: self.follower.image.security,
            ready=self._metadata_was_whole,
        )
        self.server = new_server(
            [
                *interceptors,
                authentication_interceptor(self.security, lambda: self.follower.image.security),
                *inter_node_interceptors(self.guard),
            ]
        )
        # Ready once registered and unfenced: the controller then lets it lead and clients
        # may be sent to it. Not ready again from the start of a (controlled) shutdown.
        self.health = NodeHealth(
            broker_pb2.DESCRIPTOR.services_by_name["BrokerService"].full_name,
            lambda: self.lifecycle.broker_epoch >= 0 and not self.lifecycle.fenced,
        )
        self.health.add_to_server(self.server)
        self.io = IoThreads()
        self.producer_ids = ProducerIdManager(self._allocate_producer_ids, broker_id=self.broker_id)
        self._tasks: list[asyncio.Task[None]] = []
        self.scrubber: Scrubber | None = None
        self.cleaner: LogCleaner | None = None
        self._cleaner_thread: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        bconf = self.config
        log_dir = self.data_dir / PARTITION_LOGS_DIR
        # Replication drives the high watermark (the ISR's minimum log end offset).
        self.logs = await self.io.run(
            LogManager.open,
            [log_dir],
            fsync_every_batch=bconf.fsync_every_batch,
            hw_follows_log_end=False,
            recovery_threads=CREATE_THREADS,  # a restart with 100,000 partitions opens them all
        )
        self.replicas = ReplicaManager(
            self.broker_id,
            self.logs,
            self.follower,
            io=self.io,
            controller=self.client,
            broker_epoch=lambda: self.lifecycle.broker_epoch,
            lag_time_max_ms=bconf.replica_lag_time_max_ms,
            report_unreachable=self.lifecycle.report_unreachable,
        )
        # No leading or following before this incarnation's registration is in the image.
        self.lifecycle.add_registration_listener(self.replicas.wake)
        self.servicer = BrokerServicer(
            cluster_id=self.cluster_id,
            replicas=self.replicas,
            follower=self.follower,
            producer_ids=self.producer_ids,
            controller_addresses=self.controller_addresses,
            active_controller=lambda: self.lifecycle.active_controller_id,
            init_transactional_producer=self._init_transactional_producer,
            txn_writes=self.txn_writes,
            guard=self.guard,
            traffic=self.traffic,
        )
        add_servicer(
            broker_pb2_grpc.add_BrokerServiceServicer_to_server,
            self.servicer,
            self.server,
            {
                "Fetch": FETCH_CODEC,
                "ReplicaFetchStream": FETCH_CODEC,
                "Produce": PRODUCE_CODEC,
                "ProduceStream": PRODUCE_CODEC,
            },
        )
        group_config = GroupConfig(
            session_timeout_ms=bconf.group_consumer_session_timeout_ms,
            heartbeat_interval_ms=bconf.group_consumer_heartbeat_interval_ms,
        )
        self.groups = GroupCoordinator(
            offsets_log=ReplicatedOffsetsLog(self.replicas),
            metadata=self.offsets_topic,
            shard_factory=lambda partition: ConsumerGroupShard(partition, group_config),
            broker_id=self.broker_id,
        )
        self.follower.add_listener(self.groups.wake)
        self.registry.register(
            BrokerCollector(
                BrokerView(
                    broker_id=self.broker_id,
                    image=lambda: self.follower.image,
                    hosted=self._hosted_logs,
                    committed_offsets=self._committed_offsets,
                )
            )
        )
        groups_pb2_grpc.add_GroupServiceServicer_to_server(
            GroupServicer(
                coordinator=self.groups,
                offsets_topic=self.offsets_topic,
                transaction_topic=self.transaction_topic,
                guard=self.guard,
            ),
            self.server,
        )
        # WriteTxnMarkers for the partitions this broker leads (also called directly by its
        # own coordinator's marker sender); __consumer_offsets' go through its group
        # coordinator, which settles the transactional offsets they close.
        marker_writer = MarkerWriter(
            self.replicas,
            group_marker=self.groups.complete_transaction,
            on_marker=None if self.txn_writes is None else self.txn_writes.forget,
        )
        transactions = self.transactions = self._transaction_coordinator(
            self.replicas, marker_writer
        )
        self.follower.add_listener(transactions.wake)
        transactions_pb2_grpc.add_TransactionServiceServicer_to_server(
            TransactionServicer(
                coordinator=transactions, marker_writer=marker_writer, guard=self.guard
            ),
            self.server,
        )
        add_fault_service(self.server, FAULTS)
        add_listeners(self.server, self.listeners)
        await self.health.start()
        await self.server.start()
        self._tasks = [
            asyncio.create_task(self.follower.run(), name="metadata-follower"),
            asyncio.create_task(self.replicas.run(), name="replica-manager"),
            asyncio.create_task(self._retention_loop(), name="retention"),
            asyncio.create_task(self._deleted_files_loop(), name="deleted-files"),
            asyncio.create_task(self.replicas.run_isr_checks(), name="isr-checks"),
            asyncio.create_task(self.groups.run(), name="group-coordinator"),
            asyncio.create_task(transactions.run(), name="transaction-coordinator"),
        ]
        if bconf.scrub_bytes_per_second > 0:
            logs = self.logs
            self.scrubber = Scrubber(logs.partitions)
            self._tasks.append(
                asyncio.create_task(
                    run_scrubber(
                        self.scrubber,
                        bytes_per_second=bconf.scrub_bytes_per_second,
                        io=self.io.run,
                        on_damage=self.replicas.on_scrub_damage,
                    ),
                    name="scrubber",
                )
            )
        if bconf.log_cleaner_enable:
            self.cleaner = LogCleaner(
                io_max_bytes_per_second=bconf.log_cleaner_io_max_bytes_per_second
            )
            # A thread of its own: a pass reads and writes whole segments, which must not hold
            # up the I/O threads (appends, fetches, fsyncs) or the event loop.
            self._cleaner_thread = ThreadPoolExecutor(1, thread_name_prefix="log-cleaner")
            self._tasks.append(
                asyncio.create_task(self._cleaner_loop(self.cleaner), name="log-cleaner")
            )
        if bconf.kafka_listen:
            from raftka.broker.kafka.backend import KafkaBackend
            from raftka.broker.kafka.listener import kafka_listener

            self.kafka = kafka_listener(
                bconf,
                KafkaBackend(
                    broker_id=self.broker_id,
                    cluster_id=self.cluster_id,
                    replicas=self.replicas,
                    image=lambda: self.follower.image,
                    producer_ids=self.producer_ids,
                    controller=self.client,
                    traffic=self.traffic,
                    init_transactional_producer=self._init_transactional_producer,
                    txn_writes=self.txn_writes,
                    groups=self.groups,
                    offsets_topic=self.offsets_topic,
                    transactions=self.transactions,
                    transaction_topic=self.transaction_topic,
                    guard=self.guard,
                    owners=self.servicer.owners,
                    quotas=self.servicer.quotas,
                    config=bconf,
                ),
                self.security,
            )
            await self.kafka.start()
        await self.lifecycle.start()
        log.info(
            "broker_started",
            broker_id=self.broker_id,
            listen=bconf.listen,
            internal_listen=bconf.internal_listen or None,
            epoch=self.lifecycle.broker_epoch,
        )

    def _hosted_logs(self) -> list[HostedLog]:
        replicas = self.replicas
        if replicas is None:
            return []
        return [
            HostedLog(
                p.topic,
                p.partition,
                p.log.size_bytes,
                p.log.log_start_offset,
                p.log.log_end_offset,
                p.high_watermark,
            )
            for p in replicas.hosted()
        ]

    def _committed_offsets(self) -> list[CommittedOffset]:
        """Every committed offset of the groups this broker coordinates now."""
        if self.groups is None:
            return []
        return [
            CommittedOffset(*entry)
            for shard in self.groups.loaded_shards()
            if isinstance(shard, ConsumerGroupShard)
            for entry in shard.committed_offsets()
        ]

    def _metadata_was_whole(self) -> bool:
        """Whether this broker's image has held every committed record at some point (the
        controller said so in a heartbeat answer, or the metadata stream in a Progress
        event): from then on its ACLs can be trusted. A latch: later lag does not undo it."""
        if not self._whole:
            self._whole = self.follower.caught_up or self.lifecycle.caught_up
        return self._whole

    def _transaction_coordinator(
        self, replicas: ReplicaManager, marker_writer: MarkerWriter
    ) -> TransactionCoordinator:
        """The transaction coordinator and its marker sender."""
        bconf = self.config
        txn_config = TxnConfig(
            max_timeout_ms=bconf.transaction_max_timeout_ms,
            default_timeout_ms=min(
                TxnConfig().default_timeout_ms, bconf.transaction_max_timeout_ms
            ),
            abort_timed_out_interval_ms=(
                bconf.transaction_abort_timed_out_transaction_cleanup_interval_ms
            ),
            id_expiration_ms=bconf.transactional_id_expiration_ms,
        )
        image = lambda: self.follower.image  # noqa: E731
        self.marker_transport = GrpcMarkerTransport(
            self.broker_channels, broker_id=self.broker_id, local=marker_writer
        )
        return TransactionCoordinator(
            internal_log=ReplicatedInternalLog(replicas, TRANSACTION_STATE_TOPIC),
            topic=self.transaction_topic,
            offsets_topic=self.offsets_topic,
            shard_factory=lambda partition, epoch: TransactionShard(partition, epoch, txn_config),
            producer_ids=self.producer_ids.next_id,
            markers=MarkerSender(ImageMarkerRouting(image), self.marker_transport),
            broker_id=self.broker_id,
            tick_interval_ms=min(
                TXN_TICK_INTERVAL_MS,
                bconf.transaction_abort_timed_out_transaction_cleanup_interval_ms,
            ),
        )

    async def _init_transactional_producer(
        self, transactional_id: str, timeout_ms: int
    ) -> tuple[int, int]:
        if self.transactions is None:
            raise CoordinatorLoadInProgressError(f"broker {self.broker_id} is starting; retry")
        result = await self.transactions.init_producer_id(transactional_id, timeout_ms)
        return result.producer_id, result.producer_epoch

    async def verify_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partitions: Sequence[TopicPartition],
    ) -> list[TopicPartition]:
        """This broker's coordinator's verification of a transactional write (for the
        leaders' check when the coordinator is local)."""
        if self.transactions is None:
            raise CoordinatorLoadInProgressError(f"broker {self.broker_id} is starting; retry")
        return await self.transactions.verify_partitions(
            transactional_id, producer_id, producer_epoch, partitions
        )

    async def _allocate_producer_ids(self) -> ProducerIdBlock:
        epoch = self.lifecycle.broker_epoch
        if epoch < 0:
            raise CoordinatorLoadInProgressError(
                f"broker {self.broker_id} has not registered with the controller yet"
            )
        response = await self.client.allocate_producer_ids(self.broker_id, epoch)
        return ProducerIdBlock(response.first_producer_id, response.count)

    async def _retention_loop(self) -> None:
        interval = self.config.retention_check_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            if self.logs is not None:
                await self.io.run(apply_retention, self.logs.partitions(), wall_clock_ms())

    async def _cleaner_loop(self, cleaner: LogCleaner) -> None:
        """Cleans every eligible compacted log, then waits log_cleaner_backoff_ms."""
        loop = asyncio.get_running_loop()
        backoff = self.config.log_cleaner_backoff_ms / 1000
        while True:
            if self.logs is not None:
                # Listed here, on the event loop that changes the set of logs; a log closed
                # meanwhile is skipped by the cleaner.
                partitions = self.logs.partitions()
                try:
                    await loop.run_in_executor(
                        self._cleaner_thread, run_cleaner_passes, cleaner, partitions
                    )
                except Exception as exc:  # the loop must survive one bad pass
                    log.exception("log_cleaner_pass_failed", error=str(exc))
            await asyncio.sleep(backoff)

    async def _deleted_files_loop(self) -> None:
        """Removes deleted segments' files once their file.delete.delay.ms has passed."""
        while True:
            await asyncio.sleep(DELETED_FILES_CHECK_INTERVAL_MS / 1000)
            if self.logs is not None:
                await self.io.run(remove_deleted_segments, self.logs.partitions(), wall_clock_ms())

    async def shutdown(self) -> None:
        log.info("broker_stopping", broker_id=self.broker_id)
        await self.health.stop()
        timeout_s = self.config.controlled_shutdown_timeout_ms / 1000
        confirmed = await self.lifecycle.shutdown(timeout_s)
        log.info("broker_controlled_shutdown", broker_id=self.broker_id, confirmed=confirmed)
        await self.server.stop(grace=0.5)
        if self.kafka is not None:
            await self.kafka.stop()
        if self.cleaner is not None:
            self.cleaner.stop()
        await cancel_and_wait(self._tasks)
        if self._cleaner_thread is not None:
            # A pass in progress stops at its next batch; the logs close after it.
            await asyncio.to_thread(self._cleaner_thread.shutdown, True)
        await self.offsets_topic.close()
        await self.transaction_topic.close()
        await self.broker_channels.close()
        await self.producer_ids.close()
        if self.replicas is not None:
            await self.replicas.stop()
        await self.client.close()
        if self.logs is not None:
            await self.io.run(self.logs.close)
        await asyncio.to_thread(self.io.close)
        log.info("broker_stopped", broker_id=self.broker_id)
