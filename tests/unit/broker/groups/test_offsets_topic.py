"""The shape of __consumer_offsets as the coordinator creates it."""

from __future__ import annotations

import pytest

from raftka.broker.groups.offsets_topic import OffsetsTopic, offsets_topic_spec
from raftka.common.metadata.image import MetadataImage
from raftka.common.metadata.records import topic_record
from raftka.common.metadata.topic_configs import validate_topic_configs
from raftka.v1.metadata_pb2 import MetadataBatch
from tests.unit.common.metadata.builders import partition


@pytest.mark.parametrize(
    ("live", "rf", "min_isr"), [(1, 1, None), (2, 2, None), (3, 3, "2"), (5, 3, "2")]
)
def test_replication_factor_is_capped_at_the_live_brokers(
    live: int, rf: int, min_isr: str | None
) -> None:
    spec = offsets_topic_spec(50, 3, live)
    assert (spec.name, spec.num_partitions, spec.replication_factor) == (
        "__consumer_offsets",
        50,
        rf,
    )
    assert spec.configs.get("min.insync.replicas") == min_isr
    assert spec.configs["cleanup.policy"] == "compact"
    assert spec.configs["segment.bytes"] == "104857600"
    validate_topic_configs(dict(spec.configs))  # the controller accepts them


def test_the_topics_view_follows_an_image_changed_in_place() -> None:
    """The broker's image is changed in place as metadata arrives: the coordinator's view of
    the topics (what subscriptions resolve against) must follow every applied entry."""
    image = MetadataImage()
    offsets = OffsetsTopic(lambda: image, creator=None, partitions=50, replication_factor=3)  # type: ignore[arg-type]
    image.apply_batch(
        MetadataBatch(records=[topic_record("grows", "id-grows"), partition("id-grows", 0, [1])]),
        1,
    )
    assert offsets.topics() == {"grows": 1}
    image.apply_batch(
        MetadataBatch(
            records=[
                partition("id-grows", 1, [1]),
                topic_record("metrics-cpu", "id-m"),
                partition("id-m", 0, [1]),
            ]
        ),
        2,
    )
    assert offsets.topics() == {"grows": 2, "metrics-cpu": 1}
