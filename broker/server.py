"""One broker role: partition logs, metadata following, lifecycle and the BrokerService.

Start-up: open (and recover) the partition logs, follow the metadata log, register with the
controllers, serve. The broker starts fenced and is unfenced once it has caught up with the
metadata log. ``shutdown()`` is a controlled shutdown: the controller moves leadership away
first, then the service stops and the logs are flushed and closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import structlog

from raftka.broker.config import BrokerConfig
from raftka.broker.groups.api import GroupConfig
from raftka.broker.groups.offsets_log import ReplicatedOffsetsLog
from raftka.broker.groups.offsets_topic import OffsetsTopic
from raftka.broker.groups.runtime import GroupCoordinator
from raftka.broker.groups.service import GroupServicer
from raftka.broker.groups.shard import ConsumerGroupShard
from raftka.broker.io_threads import IoThreads
from raftka.broker.lifecycle import BrokerLifecycle
from raftka.broker.log.manager import LogManager
from raftka.broker.log.retention import (
    DELETED_FILES_CHECK_INTERVAL_MS,
    apply_retention,
    remove_deleted_segments,
)
from raftka.broker.log.scrubber import Scrubber, run_scrubber
from raftka.broker.metadata_follower import MetadataFollower
from raftka.broker.producers.id_blocks import ProducerIdBlock, ProducerIdManager
from raftka.broker.replica_manager import ReplicaManager
from raftka.broker.service import BrokerServicer
from raftka.common.clock import wall_clock_ms
from raftka.common.data_dir import PARTITION_LOGS_DIR, check_data_dir
from raftka.common.errors import CoordinatorLoadInProgressError
from raftka.common.fault_service import add_fault_service
from raftka.common.faults import FAULTS
from raftka.common.rpc.channels import new_server
from raftka.common.rpc.controller_client import ControllerClient
from raftka.common.tasks import cancel_and_wait
from raftka.v1 import broker_pb2_grpc, groups_pb2_grpc
from raftka.v1.common_pb2 import Endpoint

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
    ) -> None:
        self.config = config
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
            listeners=[Endpoint(name="CLIENT", host=config.host, port=config.port)],
            rack=config.rack,
            heartbeat_interval_s=config.heartbeat_interval_ms / 1000,
            follower=self.follower,
        )
        self.logs: LogManager | None = None
        self.replicas: ReplicaManager | None = None
        self.servicer: BrokerServicer | None = None
        self.groups: GroupCoordinator | None = None
        self.offsets_topic = OffsetsTopic(
            lambda: self.follower.image,
            self.client,
            partitions=config.offsets_topic_num_partitions,
            replication_factor=config.offsets_topic_replication_factor,
        )
        self.server = new_server()
        self.io = IoThreads()
        self.producer_ids = ProducerIdManager(self._allocate_producer_ids, broker_id=self.broker_id)
        self._tasks: list[asyncio.Task[None]] = []
        self.scrubber: Scrubber | None = None

    async def start(self) -> None:
        bconf = self.config
        log_dir = self.data_dir / PARTITION_LOGS_DIR
        # Replication drives the high watermark (the ISR's minimum log end offset).
        self.logs = await self.io.run(
            LogManager.open,
            [log_dir],
            fsync_every_batch=bconf.fsync_every_batch,
            hw_follows_log_end=False,
        )
        self.replicas = ReplicaManager(
            self.broker_id,
            self.logs,
            self.follower,
            io=self.io,
            controller=self.client,
            broker_epoch=lambda: self.lifecycle.broker_epoch,
            lag_time_max_ms=bconf.replica_lag_time_max_ms,
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
        )
        broker_pb2_grpc.add_BrokerServiceServicer_to_server(self.servicer, self.server)
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
        groups_pb2_grpc.add_GroupServiceServicer_to_server(
            GroupServicer(coordinator=self.groups, offsets_topic=self.offsets_topic), self.server
        )
        add_fault_service(self.server, FAULTS)
        if self.server.add_insecure_port(bconf.listen) == 0:
            raise OSError(f"cannot listen on {bconf.listen}: is another process using the port?")
        await self.server.start()
        self._tasks = [
            asyncio.create_task(self.follower.run(), name="metadata-follower"),
            asyncio.create_task(self.replicas.run(), name="replica-manager"),
            asyncio.create_task(self._retention_loop(), name="retention"),
            asyncio.create_task(self._deleted_files_loop(), name="deleted-files"),
            asyncio.create_task(self.replicas.run_isr_checks(), name="isr-checks"),
            asyncio.create_task(self.groups.run(), name="group-coordinator"),
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
        await self.lifecycle.start()
        log.info(
            "broker_started",
            broker_id=self.broker_id,
            listen=bconf.listen,
            epoch=self.lifecycle.broker_epoch,
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

    async def _deleted_files_loop(self) -> None:
        """Removes deleted segments' files once their file.delete.delay.ms has passed."""
        while True:
            await asyncio.sleep(DELETED_FILES_CHECK_INTERVAL_MS / 1000)
            if self.logs is not None:
                await self.io.run(remove_deleted_segments, self.logs.partitions(), wall_clock_ms())

    async def shutdown(self) -> None:
        log.info("broker_stopping", broker_id=self.broker_id)
        timeout_s = self.config.controlled_shutdown_timeout_ms / 1000
        confirmed = await self.lifecycle.shutdown(timeout_s)
        log.info("broker_controlled_shutdown", broker_id=self.broker_id, confirmed=confirmed)
        await self.server.stop(grace=0.5)
        await cancel_and_wait(self._tasks)
        await self.offsets_topic.close()
        await self.producer_ids.close()
        if self.replicas is not None:
            await self.replicas.stop()
        await self.client.close()
        if self.logs is not None:
            await self.io.run(self.logs.close)
        await asyncio.to_thread(self.io.close)
        log.info("broker_stopped", broker_id=self.broker_id)
