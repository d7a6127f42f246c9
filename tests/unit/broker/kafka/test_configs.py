"""DescribeConfigs, IncrementalAlterConfigs and AlterConfigs over the Kafka listener: what goes
to the controller, what this broker answers itself, and the answers at every served version."""

from __future__ import annotations

from typing import Any

import pytest
from kio.schema.errors import ErrorCode

from raftka.broker.config import BrokerConfig
from raftka.broker.kafka.configs import (
    ALTER_CONFIGS_KEY,
    DESCRIBE_CONFIGS_KEY,
    INCREMENTAL_ALTER_CONFIGS_KEY,
    AlterConfigsHandler,
    DescribeConfigsHandler,
    IncrementalAlterConfigsHandler,
)
from raftka.common import limits
from raftka.common.errors import RequestTimedOutError
from raftka.common.metadata.topic_configs import TOPIC_CONFIGS
from raftka.common.security.model import OP_ALTER_CONFIGS, OP_DESCRIBE_CONFIGS, RESOURCE_TOPIC
from raftka.v1 import common_pb2 as cmn
from raftka.v1 import controller_pb2 as cpb
from tests.unit.broker.kafka.admin_fakes import (
    ALICE,
    BROKER_ID,
    FakeController,
    backend,
    context,
    denying_guard,
    encodes,
    part,
    request,
    run_as,
    versions,
)

TOPIC, BROKER = 2, 4


def described(name: str) -> cpb.ConfigResourceResult:
    return cpb.ConfigResourceResult(
        type=cmn.RESOURCE_TYPE_TOPIC,
        name=name,
        entries=[
            cmn.ConfigEntry(
                name="retention.ms",
                value="1000",
                source=cmn.CONFIG_SOURCE_TOPIC,
                documentation="How long.",
            ),
            cmn.ConfigEntry(
                name="cleanup.policy", value="delete", source=cmn.CONFIG_SOURCE_DEFAULT
            ),
        ],
    )


def describe_request(version: int, *resources: tuple[int, str], **flags: Any) -> Any:
    return request(
        DESCRIBE_CONFIGS_KEY,
        version,
        resources=tuple(
            part(
                DESCRIBE_CONFIGS_KEY,
                version,
                "DescribeConfigsResource",
                resource_type=t,
                resource_name=n,
                configuration_keys=None,
            )
            for t, n in resources
        ),
        **flags,
    )


@pytest.mark.parametrize("version", versions(1, 4))
def test_describe_topic_configs_come_from_the_controller(version: int) -> None:
    controller = FakeController(describe_configs=[described("orders")])
    handler = DescribeConfigsHandler(backend(controller))
    answer = run_as(
        ALICE,
        handler(
            describe_request(
                version, (TOPIC, "orders"), include_synonyms=True, include_documentation=True
            ),
            context(DESCRIBE_CONFIGS_KEY, version),
        ),
    )
    encodes(answer)
    ((_, (asked,), _),) = controller.calls
    assert [(r.type, r.name, list(r.names)) for r in asked] == [
        (cmn.RESOURCE_TYPE_TOPIC, "orders", [])
    ]
    (result,) = answer.results
    assert result.error_code == ErrorCode.none
    retention, policy = result.configs
    assert (retention.value, retention.config_source, retention.read_only) == ("1000", 1, False)
    assert policy.config_source == 5
    assert [(s.value, s.source) for s in retention.synonyms] == [
        ("1000", 1),
        (TOPIC_CONFIGS["retention.ms"].default, 5),
    ]
    if version >= 3:
        assert retention.documentation == "How long."
        assert (retention.config_type, policy.config_type) == (5, 7)  # LONG, LIST


def test_describe_leaves_synonyms_and_documentation_out_unless_asked() -> None:
    handler = DescribeConfigsHandler(backend(FakeController(describe_configs=[described("t")])))
    answer = run_as(
        ALICE,
        handler(
            describe_request(4, (TOPIC, "t"), include_synonyms=False, include_documentation=False),
            context(DESCRIBE_CONFIGS_KEY, 4),
        ),
    )
    assert all(c.synonyms == () and c.documentation is None for c in answer.results[0].configs)


def test_this_brokers_settings_are_described_here_and_others_refused() -> None:
    controller = FakeController(describe_configs=[])
    config = BrokerConfig(kafka_listen="127.0.0.1:9093")
    handler = DescribeConfigsHandler(backend(controller, config=config))
    answer = run_as(
        ALICE,
        handler(
            describe_request(
                4,
                (BROKER, str(BROKER_ID)),
                (BROKER, "2"),
                (BROKER, ""),
                (16, "metrics"),
                include_synonyms=True,
                include_documentation=False,
            ),
            context(DESCRIBE_CONFIGS_KEY, 4),
        ),
    )
    encodes(answer)
    assert controller.calls == []
    own, other, defaults, odd = answer.results
    entries = {c.name: c for c in own.configs}
    assert entries["broker.kafka_listen"].value == "127.0.0.1:9093"
    assert entries["broker.kafka_listen"].config_source == 4  # STATIC_BROKER_CONFIG
    assert entries["broker.rack"].config_source == 5  # DEFAULT_CONFIG
    assert entries["broker.log_cleaner_enable"].value == "true"
    assert all(c.read_only and not c.is_sensitive for c in own.configs)
    assert other.error_code == ErrorCode.invalid_request and "'2'" in (other.error_message or "")
    assert defaults.error_code == ErrorCode.none and defaults.configs == ()
    assert odd.error_code == ErrorCode.invalid_request


def test_describe_checks_describe_configs_per_topic_and_on_the_cluster_for_a_broker() -> None:
    controller = FakeController(describe_configs=[described("mine")])
    guard = denying_guard((ALICE, OP_DESCRIBE_CONFIGS, RESOURCE_TOPIC, "mine"))
    handler = DescribeConfigsHandler(backend(controller, guard=guard, config=BrokerConfig()))
    answer = run_as(
        ALICE,
        handler(
            describe_request(
                4,
                (TOPIC, "mine"),
                (TOPIC, "theirs"),
                (BROKER, str(BROKER_ID)),
                include_synonyms=False,
                include_documentation=False,
            ),
            context(DESCRIBE_CONFIGS_KEY, 4),
        ),
    )
    mine, theirs, broker = answer.results
    assert mine.error_code == ErrorCode.none and mine.configs
    assert theirs.error_code == ErrorCode.topic_authorization_failed
    assert broker.error_code == ErrorCode.cluster_authorization_failed
    assert "raftka acls add" in (theirs.error_message or "")
    ((_, (asked,), _),) = controller.calls
    assert [r.name for r in asked] == ["mine"]


def incremental(version: int, name: str, *configs: tuple[str, int, str | None], **more: Any) -> Any:
    key = INCREMENTAL_ALTER_CONFIGS_KEY
    return part(
        key,
        version,
        "AlterConfigsResource",
        resource_type=more.get("resource_type", TOPIC),
        resource_name=name,
        configs=tuple(
            part(key, version, "AlterableConfig", name=n, config_operation=op, value=v)
            for n, op, v in configs
        ),
    )


@pytest.mark.parametrize("version", versions(0, 1))
def test_incremental_ops_go_to_the_controller_with_kafkas_numbers(version: int) -> None:
    controller = FakeController(
        alter_configs=[
            cpb.ConfigResourceResult(name="a"),
            cpb.ConfigResourceResult(
                name="b",
                error_code=cmn.INVALID_CONFIG,
                error_message="invalid value 'x' for topic config 'retention.ms'",
            ),
        ]
    )
    handler = IncrementalAlterConfigsHandler(backend(controller))
    answer = run_as(
        ALICE,
        handler(
            request(
                INCREMENTAL_ALTER_CONFIGS_KEY,
                version,
                resources=(
                    incremental(
                        version,
                        "a",
                        ("retention.ms", 0, "5"),
                        ("segment.ms", 1, None),
                        ("cleanup.policy", 2, "compact"),
                        ("cleanup.policy", 3, "delete"),
                    ),
                    incremental(version, "b", ("retention.ms", 0, "x")),
                    incremental(version, str(BROKER_ID), ("x", 0, "1"), resource_type=BROKER),
                ),
                validate_only=True,
            ),
            context(INCREMENTAL_ALTER_CONFIGS_KEY, version),
        ),
    )
    encodes(answer)
    ((_, (asked,), kwargs),) = controller.calls
    assert kwargs == {"validate_only": True}
    assert [(o.name, o.op, o.value) for o in asked[0].ops] == [
        ("retention.ms", cpb.AlterConfigOp.SET, "5"),
        ("segment.ms", cpb.AlterConfigOp.DELETE, ""),
        ("cleanup.policy", cpb.AlterConfigOp.APPEND, "compact"),
        ("cleanup.policy", cpb.AlterConfigOp.SUBTRACT, "delete"),
    ]
    a, b, broker = answer.responses
    assert a.error_code == ErrorCode.none
    assert b.error_code == ErrorCode.invalid_config and "'retention.ms'" in (b.error_message or "")
    assert broker.error_code == ErrorCode.invalid_request
    assert "static" in (broker.error_message or "")


@pytest.mark.parametrize("version", versions(0, 2))
def test_legacy_alter_configs_replaces_the_whole_set(version: int) -> None:
    controller = FakeController(alter_configs=[cpb.ConfigResourceResult(name="t")])
    handler = AlterConfigsHandler(backend(controller))
    resource = part(
        ALTER_CONFIGS_KEY,
        version,
        "AlterConfigsResource",
        resource_type=TOPIC,
        resource_name="t",
        configs=(
            part(ALTER_CONFIGS_KEY, version, "AlterableConfig", name="retention.ms", value="9"),
        ),
    )
    answer = run_as(
        ALICE,
        handler(
            request(ALTER_CONFIGS_KEY, version, resources=(resource,), validate_only=False),
            context(ALTER_CONFIGS_KEY, version),
        ),
    )
    encodes(answer)
    ((_, (asked,), _),) = controller.calls
    ops = {o.name: (o.op, o.value) for o in asked[0].ops}
    assert ops.pop("retention.ms") == (cpb.AlterConfigOp.SET, "9")
    assert set(ops) == set(TOPIC_CONFIGS) - {"retention.ms"}
    assert {op for op, _ in ops.values()} == {cpb.AlterConfigOp.DELETE}
    assert answer.responses[0].error_code == ErrorCode.none


def test_alter_checks_alter_configs_and_maps_a_failed_forward_per_resource() -> None:
    controller = FakeController(alter_configs=RequestTimedOutError("no active controller"))
    guard = denying_guard((ALICE, OP_ALTER_CONFIGS, RESOURCE_TOPIC, "mine"))
    handler = IncrementalAlterConfigsHandler(backend(controller, guard=guard))
    answer = run_as(
        ALICE,
        handler(
            request(
                INCREMENTAL_ALTER_CONFIGS_KEY,
                1,
                resources=(
                    incremental(1, "mine", ("retention.ms", 0, "5")),
                    incremental(1, "theirs", ("retention.ms", 0, "5")),
                    incremental(1, str(BROKER_ID), ("x", 0, "1"), resource_type=BROKER),
                ),
                validate_only=False,
            ),
            context(INCREMENTAL_ALTER_CONFIGS_KEY, 1),
        ),
    )
    mine, theirs, broker = answer.responses
    assert mine.error_code == ErrorCode.request_timed_out
    assert theirs.error_code == ErrorCode.topic_authorization_failed
    assert broker.error_code == ErrorCode.cluster_authorization_failed
    assert [r.name for r in controller.calls[0][1][0]] == ["mine"]


def test_too_many_resources_get_invalid_request_each_and_nothing_is_forwarded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(limits, "MAX_ITEMS_PER_REQUEST", 3)
    controller = FakeController(describe_configs=[])
    handler = DescribeConfigsHandler(backend(controller))
    names = [(TOPIC, f"t{i}") for i in range(4)]
    answer = run_as(
        ALICE,
        handler(
            describe_request(4, *names, include_synonyms=False, include_documentation=False),
            context(DESCRIBE_CONFIGS_KEY, 4),
        ),
    )
    assert controller.calls == []
    assert {r.error_code for r in answer.results} == {ErrorCode.invalid_request}


def test_configuration_keys_as_kafka_reads_them() -> None:
    controller = FakeController(describe_configs=[described("t"), described("t")])
    handler = DescribeConfigsHandler(backend(controller, config=BrokerConfig()))

    def resource(kind: int, name: str, keys: tuple[str, ...]) -> Any:
        return part(
            DESCRIBE_CONFIGS_KEY,
            4,
            "DescribeConfigsResource",
            resource_type=kind,
            resource_name=name,
            configuration_keys=keys,
        )

    asked = request(
        DESCRIBE_CONFIGS_KEY,
        4,
        resources=(
            resource(TOPIC, "t", ("retention.ms", "retention.hours")),
            resource(TOPIC, "t", ()),
            resource(BROKER, str(BROKER_ID), ("broker.rack", "nope")),
        ),
        include_synonyms=False,
        include_documentation=False,
    )
    named, none, broker = run_as(ALICE, handler(asked, context(DESCRIBE_CONFIGS_KEY, 4))).results
    ((_, (forwarded,), _),) = controller.calls
    # Unknown names are not sent: the controller would fail the resource for them.
    assert [list(r.names) for r in forwarded] == [["retention.ms"], []]
    assert [c.name for c in named.configs] == ["retention.ms"]
    assert none.error_code == ErrorCode.none and none.configs == ()
    assert [c.name for c in broker.configs] == ["broker.rack"]


def test_too_many_configs_in_all_get_invalid_request_each(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_ITEMS_PER_REQUEST", 3)
    controller = FakeController(alter_configs=[])
    handler = IncrementalAlterConfigsHandler(backend(controller))
    ops = [("retention.ms", 0, "1"), ("segment.ms", 0, "1")]
    answer = run_as(
        ALICE,
        handler(
            request(
                INCREMENTAL_ALTER_CONFIGS_KEY,
                1,
                resources=(incremental(1, "a", *ops), incremental(1, "b", *ops)),
                validate_only=False,
            ),
            context(INCREMENTAL_ALTER_CONFIGS_KEY, 1),
        ),
    )
    assert controller.calls == []
    assert [r.error_code for r in answer.responses] == [ErrorCode.invalid_request] * 2
    assert "configs has 4 items" in (answer.responses[0].error_message or "")
