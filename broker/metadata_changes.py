"""What a metadata delta changed, as far as the partitions a broker hosts are concerned.

The replica manager reconciles after metadata changes. Going over every partition of the image
for each change makes a large cluster quadratic: an ISR change of one partition among 100,000
would touch all of them, and a topic of 10,000 partitions sees thousands of such changes while
it settles. So the metadata follower records which partitions each delta touched, and the
replica manager reconciles only those, or everything when a record may concern every
partition (a broker registered, fenced or moved; a snapshot; a non-topic config).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from raftka.common.metadata.image import MetadataImage
from raftka.v1.common_pb2 import ResourceType
from raftka.v1.metadata_pb2 import MetadataRecord

_TOPIC_CONFIG = ResourceType.RESOURCE_TYPE_TOPIC
_NOT_PARTITIONS = frozenset(
    {
        "producer_ids",
        "no_op",
        "access_control_entry",
        "remove_access_control_entry",
        "user_scram_credential",
        "remove_user_scram_credential",
        "client_quota",
    }
)
"""Record kinds that change nothing a hosted partition depends on."""


@dataclass
class MetadataChanges:
    """Partitions changed since the changes were last taken."""

    everything: bool = False
    topics: set[str] = field(default_factory=set)
    """Topics changed as a whole (created, deleted, configs)."""
    partitions: set[tuple[str, int]] = field(default_factory=set)

    def __bool__(self) -> bool:
        return self.everything or bool(self.topics) or bool(self.partitions)

    def covers(self, topic: str, partition: int) -> bool:
        return self.everything or topic in self.topics or (topic, partition) in self.partitions

    def add_all(self) -> None:
        self.everything = True
        self.topics.clear()
        self.partitions.clear()

    def merge(self, other: MetadataChanges) -> None:
        if other.everything or self.everything:
            self.add_all()
            return
        self.topics |= other.topics
        self.partitions |= other.partitions

    def note_records(self, image: MetadataImage, records: Iterable[MetadataRecord]) -> None:
        """Note what ``records`` change; call with the image *before* they are applied (a
        removed topic's name is found there; a new topic's comes from its TopicRecord)."""
        if self.everything:
            return
        new_names: dict[str, str] = {}

        def name_of(topic_id: str) -> str | None:
            name = new_names.get(topic_id)
            if name is None:
                topic = image.topic_by_id(topic_id)
                name = None if topic is None else topic.name
            return name

        for record in records:
            kind = record.WhichOneof("record")
            if kind in _NOT_PARTITIONS:
                continue
            if kind == "topic":
                new_names[record.topic.topic_id] = record.topic.name
                self.topics.add(record.topic.name)
                continue
            if kind in ("partition", "partition_change"):
                r = record.partition if kind == "partition" else record.partition_change
                name = name_of(r.topic_id)
                if name is not None:
                    if name not in self.topics:
                        self.partitions.add((name, r.partition_id))
                    continue
            elif kind == "remove_topic":
                name = name_of(record.remove_topic.topic_id)
                if name is not None:
                    self.topics.add(name)
                    continue
            elif kind == "config" and record.config.resource_type == _TOPIC_CONFIG:
                self.topics.add(record.config.resource_name)
                continue
            # Broker registrations and fencing (leaders' addresses, fenced replicas), broker
            # configs, or a record naming an unknown topic: reconcile everything.
            self.add_all()
            return
