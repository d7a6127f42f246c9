"""DescribeConfigs / AlterConfigs for topics."""

from __future__ import annotations

from raftka.common.metadata.topic_configs import TOPIC_CONFIGS
from raftka.controller.control.configs import alter_configs, describe_configs
from raftka.v1.common_pb2 import ConfigSource, ErrorCode, ResourceType
from raftka.v1.controller_pb2 import (
    AlterConfigOp,
    AlterConfigResource,
    AlterConfigsRequest,
    ConfigResource,
    DescribeConfigsRequest,
)

from .harness import Harness

TOPIC = ResourceType.RESOURCE_TYPE_TOPIC
SET, DELETE = AlterConfigOp.SET, AlterConfigOp.DELETE


def _harness() -> Harness:
    h = Harness()
    h.add_brokers([1])
    h.create_topic("t", 1, 1, {"retention.ms": "1000"})
    h.create_topic("u", 1, 1)
    return h


def _op(name: str, value: str = "", op: AlterConfigOp.Op.ValueType = SET) -> AlterConfigOp:
    return AlterConfigOp(name=name, op=op, value=value)


def test_describe_all_configs_with_sources() -> None:
    h = _harness()
    response = describe_configs(
        h.image, DescribeConfigsRequest(resources=[ConfigResource(type=TOPIC, name="t")])
    )
    (result,) = response.results
    assert result.error_code == ErrorCode.NONE
    entries = {e.name: e for e in result.entries}
    assert list(entries) == sorted(TOPIC_CONFIGS)
    assert (entries["retention.ms"].value, entries["retention.ms"].source) == (
        "1000",
        ConfigSource.CONFIG_SOURCE_TOPIC,
    )
    assert (entries["segment.bytes"].value, entries["segment.bytes"].source) == (
        "1073741824",
        ConfigSource.CONFIG_SOURCE_DEFAULT,
    )
    assert all(e.documentation and not e.read_only for e in result.entries)


def test_describe_filters_and_per_resource_errors() -> None:
    h = _harness()
    response = describe_configs(
        h.image,
        DescribeConfigsRequest(
            resources=[
                ConfigResource(type=TOPIC, name="t", names=["segment.ms", "retention.ms"]),
                ConfigResource(type=TOPIC, name="missing"),
                ConfigResource(type=ResourceType.RESOURCE_TYPE_BROKER, name="1"),
                ConfigResource(type=TOPIC, name="u", names=["retention.hours"]),
                ConfigResource(type=99, name="x"),  # type: ignore[arg-type]
            ]
        ),
    )
    filtered, missing, broker, unknown_name, odd = response.results
    assert [e.name for e in filtered.entries] == ["retention.ms", "segment.ms"]
    assert missing.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION and not missing.entries
    assert broker.error_code == ErrorCode.INVALID_REQUEST
    assert "RESOURCE_TYPE_BROKER" in broker.error_message
    assert "only supported type is RESOURCE_TYPE_TOPIC" in broker.error_message
    assert "not supported yet" not in broker.error_message
    assert unknown_name.error_code == ErrorCode.INVALID_CONFIG and not unknown_name.entries
    assert odd.error_code == ErrorCode.INVALID_REQUEST and "99" in odd.error_message


def test_alter_sets_and_deletes_only_what_changes() -> None:
    h = _harness()
    result = alter_configs(
        h.image,
        AlterConfigsRequest(
            resources=[
                AlterConfigResource(
                    type=TOPIC,
                    name="t",
                    ops=[
                        _op("retention.ms", op=DELETE),
                        _op("segment.ms", " 60000"),
                        _op("cleanup.policy", op=DELETE),  # not set: no record
                    ],
                ),
                AlterConfigResource(type=TOPIC, name="u", ops=[_op("retention.ms", "5")]),
            ]
        ),
    )
    assert [r.error_code for r in result.response.results] == [ErrorCode.NONE] * 2
    changes = [
        (
            r.config.resource_name,
            r.config.name,
            r.config.value if r.config.HasField("value") else None,
        )
        for r in result.records
    ]
    assert changes == [
        ("t", "retention.ms", None),
        ("t", "segment.ms", "60000"),
        ("u", "retention.ms", "5"),
    ]
    h.commit(result)
    assert h.image.topic_configs("t") == {"segment.ms": "60000"}
    assert h.image.topic_configs("u") == {"retention.ms": "5"}
    # Setting the same value again changes nothing.
    again = alter_configs(
        h.image,
        AlterConfigsRequest(
            resources=[AlterConfigResource(type=TOPIC, name="u", ops=[_op("retention.ms", "5")])]
        ),
    )
    assert again.records == () and again.response.results[0].error_code == ErrorCode.NONE


def test_alter_errors_write_nothing_for_that_resource() -> None:
    cases = [
        (
            AlterConfigResource(type=TOPIC, name="nope", ops=[_op("retention.ms", "1")]),
            ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
            "'nope'",
        ),
        (
            AlterConfigResource(type=TOPIC, name="t", ops=[_op("retention.hours", "1")]),
            ErrorCode.INVALID_CONFIG,
            "unknown topic config",
        ),
        (
            AlterConfigResource(
                type=TOPIC, name="t", ops=[_op("segment.ms", "1"), _op("retention.ms", "x")]
            ),
            ErrorCode.INVALID_CONFIG,
            "'retention.ms'",
        ),
        (
            AlterConfigResource(
                type=TOPIC, name="t", ops=[_op("segment.ms", "1"), _op("segment.ms", op=DELETE)]
            ),
            ErrorCode.INVALID_REQUEST,
            "more than one op",
        ),
        (
            AlterConfigResource(
                type=TOPIC,
                name="t",
                ops=[_op("segment.ms", "1", op=AlterConfigOp.Op.ValueType(7))],
            ),
            ErrorCode.INVALID_REQUEST,
            "unknown op 7",
        ),
        (
            AlterConfigResource(type=TOPIC, name="t", ops=[_op("min.insync.replicas", "2")]),
            ErrorCode.INVALID_CONFIG,
            "min.insync.replicas 2 is larger than the replication factor 1",
        ),
        (
            AlterConfigResource(
                type=ResourceType.RESOURCE_TYPE_BROKER, name="1", ops=[_op("x", "1")]
            ),
            ErrorCode.INVALID_REQUEST,
            "RESOURCE_TYPE_TOPIC",
        ),
    ]
    for resource, code, fragment in cases:
        h = _harness()
        before = h.image.copy()
        result = alter_configs(
            h.image,
            AlterConfigsRequest(
                resources=[
                    resource,
                    AlterConfigResource(type=TOPIC, name="u", ops=[_op("segment.ms", "9")]),
                ]
            ),
        )
        bad, good = result.response.results
        assert bad.error_code == code and fragment in bad.error_message, bad
        assert good.error_code == ErrorCode.NONE
        assert [(r.config.resource_name, r.config.name) for r in result.records] == [
            ("u", "segment.ms")
        ]
        assert h.image == before


def test_duplicate_resources_and_validate_only() -> None:
    h = _harness()
    dup = AlterConfigResource(type=TOPIC, name="t", ops=[_op("segment.ms", "1")])
    result = alter_configs(h.image, AlterConfigsRequest(resources=[dup, dup]))
    assert result.records == ()
    assert [r.error_code for r in result.response.results] == [ErrorCode.INVALID_REQUEST] * 2
    result = alter_configs(h.image, AlterConfigsRequest(resources=[dup], validate_only=True))
    assert result.records == () and result.response.results[0].error_code == ErrorCode.NONE


def test_append_and_subtract_change_list_configs_from_their_current_value() -> None:
    h = _harness()
    append = AlterConfigOp.APPEND
    result = alter_configs(
        h.image,
        AlterConfigsRequest(
            resources=[
                # Appended to the default ("delete"); an item already there is not repeated.
                AlterConfigResource(
                    type=TOPIC, name="t", ops=[_op("cleanup.policy", "compact, delete", append)]
                )
            ]
        ),
    )
    assert result.response.results[0].error_code == ErrorCode.NONE
    h.commit(result)
    assert h.image.topic_configs("t")["cleanup.policy"] == "delete,compact"
    result = alter_configs(
        h.image,
        AlterConfigsRequest(
            resources=[
                AlterConfigResource(
                    type=TOPIC,
                    name="t",
                    ops=[_op("cleanup.policy", "delete", AlterConfigOp.SUBTRACT)],
                )
            ]
        ),
    )
    h.commit(result)
    assert h.image.topic_configs("t")["cleanup.policy"] == "compact"


def test_append_to_a_config_that_is_not_a_list_is_invalid_config() -> None:
    h = _harness()
    result = alter_configs(
        h.image,
        AlterConfigsRequest(
            resources=[
                AlterConfigResource(
                    type=TOPIC, name="t", ops=[_op("retention.ms", "5", AlterConfigOp.APPEND)]
                )
            ]
        ),
    )
    (answer,) = result.response.results
    assert answer.error_code == ErrorCode.INVALID_CONFIG
    assert "cannot APPEND to topic config 'retention.ms'" in answer.error_message
    assert result.records == ()
