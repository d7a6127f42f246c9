from __future__ import annotations

import pytest

from raftka.common.errors import InvalidConfigError
from raftka.common.metadata.topic_configs import (
    TOPIC_CONFIGS,
    ConfigType,
    resolved_topic_configs,
    topic_config_value,
    validate_topic_configs,
)

EXPECTED_DEFAULTS = {
    "cleanup.policy": "delete",
    "retention.ms": "604800000",
    "retention.bytes": "-1",
    "segment.bytes": "1073741824",
    "segment.ms": "604800000",
    "max.message.bytes": "1048588",
    "min.insync.replicas": "1",
    "unclean.leader.election.enable": "false",
    "compression.type": "producer",
    "message.timestamp.type": "CreateTime",
    "message.timestamp.before.max.ms": "9223372036854775807",
    "message.timestamp.after.max.ms": "3600000",
    "flush.messages": "9223372036854775807",
    "index.interval.bytes": "4096",
    "file.delete.delay.ms": "60000",
}


def test_table_has_the_supported_configs_with_kafka_defaults() -> None:
    assert {name: d.default for name, d in TOPIC_CONFIGS.items()} == EXPECTED_DEFAULTS
    for definition in TOPIC_CONFIGS.values():
        assert definition.doc and "\n" not in definition.doc
        # Every default must itself be valid.
        definition.parse(definition.default)


def test_valid_values_are_normalized() -> None:
    assert validate_topic_configs(
        {
            "retention.ms": " 86400000 ",
            "unclean.leader.election.enable": "TRUE",
            "cleanup.policy": " delete ",
            "retention.bytes": "-1",
            "compression.type": "zstd",
        }
    ) == {
        "cleanup.policy": "delete",
        "compression.type": "zstd",
        "retention.bytes": "-1",
        "retention.ms": "86400000",
        "unclean.leader.election.enable": "true",
    }
    assert validate_topic_configs({}) == {}


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("retention.ms", "-2", "a long >= -1"),
        ("retention.ms", "1.5", "a long >= -1"),
        ("retention.ms", "1_000", "a long >= -1"),
        ("retention.ms", "", "a long >= -1"),
        ("retention.ms", str(2**63), "a long >= -1"),
        ("retention.bytes", "-5", "a long >= -1"),
        ("segment.bytes", "13", "an int >= 14"),
        ("segment.bytes", str(2**31), "an int >= 14"),
        ("segment.ms", "0", "a long >= 1"),
        ("max.message.bytes", "-1", "an int >= 0"),
        ("min.insync.replicas", "0", "an int >= 1"),
        ("unclean.leader.election.enable", "yes", "true or false"),
        ("cleanup.policy", "forever", "delete, compact"),
        ("cleanup.policy", "", "delete, compact"),
        ("cleanup.policy", "delete,delete", "delete, compact"),
        ("compression.type", "brotli", "producer, uncompressed, gzip, lz4, zstd, snappy"),
        ("compression.type", "GZIP", "gzip"),
        ("message.timestamp.type", "BrokerTime", "CreateTime, LogAppendTime"),
        ("flush.messages", "0", "a long >= 1"),
        ("index.interval.bytes", "-1", "an int >= 0"),
        ("file.delete.delay.ms", "-1", "a long >= 0"),
    ],
)
def test_bad_values_name_the_config_and_allowed_values(
    name: str, value: str, fragment: str
) -> None:
    with pytest.raises(InvalidConfigError) as info:
        validate_topic_configs({name: value})
    assert repr(name) in info.value.message
    assert fragment in info.value.message


def test_unknown_config_is_rejected_with_the_supported_list() -> None:
    with pytest.raises(InvalidConfigError) as info:
        validate_topic_configs({"retention.ms": "1", "retention.hours": "1"})
    assert "'retention.hours'" in info.value.message
    assert "retention.ms" in info.value.message


def test_typed_values_and_resolution() -> None:
    overrides = {"unclean.leader.election.enable": "true", "segment.bytes": "1024"}
    assert topic_config_value(overrides, "unclean.leader.election.enable") is True
    assert topic_config_value({}, "unclean.leader.election.enable") is False
    assert topic_config_value(overrides, "segment.bytes") == 1024
    assert topic_config_value({"cleanup.policy": "compact,delete"}, "cleanup.policy") == (
        "compact",
        "delete",
    )
    resolved = resolved_topic_configs(overrides)
    assert resolved["segment.bytes"] == "1024"
    assert resolved["retention.ms"] == "604800000"
    assert set(resolved) == set(TOPIC_CONFIGS)
    assert TOPIC_CONFIGS["cleanup.policy"].type is ConfigType.LIST
