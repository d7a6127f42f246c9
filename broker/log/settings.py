"""A partition log's topic-level settings: the topic's config overrides with the config built
from them (swapped in place when they change, as Kafka does), and the topic id kept in the
directory's ``partition.metadata``."""

from __future__ import annotations

import threading
from collections.abc import Mapping

import structlog

from raftka.broker.log.config import PartitionLogConfig
from raftka.broker.log.dirs import InconsistentTopicIdError, write_topic_id
from raftka.common.ids import TopicPartition
from raftka.common.storage import SegmentedLog

log = structlog.get_logger(__name__)


class PartitionSettings:
    """The configs and topic id of one partition log (changed under its write lock)."""

    def __init__(
        self,
        topic_partition: TopicPartition,
        segmented_log: SegmentedLog,
        write_lock: threading.Lock,
        topic_id: str | None,
        overrides: Mapping[str, str],
        config: PartitionLogConfig,
    ) -> None:
        self._tp = topic_partition
        self._log = segmented_log
        self._write_lock = write_lock
        self.topic_id = topic_id
        self.overrides = dict(overrides)
        self.config = config

    def update_configs(self, overrides: Mapping[str, str]) -> None:
        """Applies the topic's new config overrides by swapping the config object (as Kafka
        does): the segmented log takes its part (segment size and age, index interval) from
        its next append on, without being reopened."""
        new = PartitionLogConfig.from_overrides(overrides)
        with self._write_lock:
            old = self.config
            if new.log_config() != old.log_config():
                self._log.update_config(new.log_config())
            self.overrides = dict(overrides)
            self.config = new
        if new != old:
            log.info(
                "partition_log_reconfigured",
                topic=self._tp.topic,
                partition=self._tp.partition,
                overrides=dict(overrides),
            )

    def assign_topic_id(self, topic_id: str) -> None:
        """Records the topic id of a directory found without one; raises
        InconsistentTopicIdError if a different id is already recorded."""
        with self._write_lock:
            if self.topic_id == topic_id:
                return
            if self.topic_id is not None:
                raise InconsistentTopicIdError(
                    f"{self._log.directory} holds topic id {self.topic_id}, not {topic_id}"
                )
            write_topic_id(self._log.directory, topic_id)
            self.topic_id = topic_id
