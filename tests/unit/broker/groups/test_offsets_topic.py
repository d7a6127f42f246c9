"""The shape of __consumer_offsets as the coordinator creates it."""

from __future__ import annotations

import pytest

from raftka.broker.groups.offsets_topic import offsets_topic_spec
from raftka.common.metadata.topic_configs import validate_topic_configs


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
