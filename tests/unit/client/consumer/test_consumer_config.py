from __future__ import annotations

import dataclasses

import pytest

from raftka.client.consumer.config import ConsumerConfig
from raftka.common.errors import InvalidConfigError

SERVERS = "127.0.0.1:9092"


def test_defaults_are_kafkas() -> None:
    c = ConsumerConfig(bootstrap_servers=SERVERS)
    assert c.auto_offset_reset == "latest"
    assert (c.fetch_min_bytes, c.fetch_max_bytes, c.fetch_max_wait_ms) == (1, 52428800, 500)
    assert c.max_partition_fetch_bytes == 1048576
    assert c.max_poll_records == 500
    assert c.request_timeout_ms == 30000
    assert c.metadata_max_age_ms == 300000
    assert c.retry_backoff_ms == 100
    assert c.group_id is None
    assert c.isolation_level == "read_uncommitted"
    assert c.check_crcs is True


def test_bootstrap_servers_as_string_or_list() -> None:
    assert ConsumerConfig(bootstrap_servers="a:1, b:2,").bootstrap_addresses == ("a:1", "b:2")
    assert ConsumerConfig(bootstrap_servers=["a:1", "b:2"]).bootstrap_addresses == ("a:1", "b:2")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "bootstrap_servers is required"),
        ({"bootstrap_servers": " , "}, "bootstrap_servers is required"),
        ({"bootstrap_servers": "localhost"}, "'localhost' is not host:port"),
        ({"bootstrap_servers": "h:99999"}, "'h:99999' is not host:port"),
        ({"bootstrap_servers": 9092}, "bootstrap_servers must be"),
        (
            {"auto_offset_reset": "smallest"},
            "auto_offset_reset must be one of 'earliest', 'latest', 'none', not 'smallest'",
        ),
        ({"isolation_level": "committed"}, "isolation_level must be one of"),
        ({"fetch_max_wait_ms": -1}, "fetch_max_wait_ms must be at least 0, not -1"),
        ({"max_poll_records": 0}, "max_poll_records must be at least 1"),
        ({"fetch_max_bytes": "big"}, "fetch_max_bytes must be an integer"),
        ({"request_timeout_ms": True}, "request_timeout_ms must be an integer"),
        ({"fetch_max_bytes": 100 * 1024 * 1024}, "fetch_max_bytes is 104857600; at most"),
        ({"group_id": ""}, "group_id must be a non-empty string or None"),
        ({"check_crcs": "yes"}, "check_crcs must be True or False"),
    ],
)
def test_invalid_settings_name_the_setting(settings: dict[str, object], message: str) -> None:
    kwargs: dict[str, object] = {"bootstrap_servers": SERVERS, **settings}
    if not settings:
        kwargs = {}
    with pytest.raises(InvalidConfigError) as err:
        ConsumerConfig(**kwargs)  # type: ignore[arg-type]
    assert message in err.value.message


def test_config_is_frozen_and_replace_revalidates() -> None:
    c = ConsumerConfig(bootstrap_servers=SERVERS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.max_poll_records = 1  # type: ignore[misc]
    with pytest.raises(InvalidConfigError, match="max_poll_records"):
        dataclasses.replace(c, max_poll_records=-5)


def test_from_properties_takes_kafka_names_and_string_values() -> None:
    c = ConsumerConfig.from_properties(
        {
            "bootstrap.servers": "a:1,b:2",
            "auto.offset.reset": "earliest",
            "fetch.max.wait.ms": "100",
            "max.poll.records": 7,
            "check.crcs": "false",
            "client.id": "me",
            "isolation.level": "read_committed",
            "group.id": "",
        }
    )
    assert c.bootstrap_addresses == ("a:1", "b:2")
    assert c.auto_offset_reset == "earliest"
    assert c.fetch_max_wait_ms == 100
    assert c.max_poll_records == 7
    assert c.check_crcs is False
    assert c.client_id == "me"
    assert c.isolation_level == "read_committed"
    assert c.group_id is None
    assert (
        ConsumerConfig.from_properties({"bootstrap_servers": SERVERS, "group.id": "g"}).group_id
        == "g"
    )


def test_group_settings_from_kafka_names() -> None:
    c = ConsumerConfig.from_properties(
        {
            "bootstrap.servers": SERVERS,
            "group.id": "g",
            "enable.auto.commit": "false",
            "auto.commit.interval.ms": "250",
            "group.instance.id": "host-1",
            "session.timeout.ms": "6000",
            "max.poll.interval.ms": "10000",
            "group.heartbeat.mode": "unary",
            "group.remote.assignor": "range",
        }
    )
    assert (c.group_id, c.enable_auto_commit, c.auto_commit_interval_ms) == ("g", False, 250)
    assert (c.group_instance_id, c.session_timeout_ms, c.max_poll_interval_ms) == (
        "host-1",
        6000,
        10000,
    )
    assert (c.group_heartbeat_mode, c.group_remote_assignor) == ("unary", "range")
    defaults = ConsumerConfig(bootstrap_servers=SERVERS)
    assert (defaults.enable_auto_commit, defaults.auto_commit_interval_ms) == (True, 5000)
    assert (defaults.session_timeout_ms, defaults.max_poll_interval_ms) == (45000, 300000)
    assert defaults.group_heartbeat_mode == "stream"


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ({"enable.auto.commitz": "true"}, "unknown consumer setting 'enable.auto.commitz'"),
        ({"enable.auto.commit": "yes"}, "enable.auto.commit must be true or false"),
        ({"group.heartbeat.mode": "udp"}, "group.heartbeat.mode must be one of"),
        ({"session.timeout.ms": "500"}, "session.timeout.ms must be at least 1000"),
        ({"group.instance.id": "i-1"}, "group.instance.id needs a group_id"),
        ({"fetch.min.bytes": "1k"}, "fetch.min.bytes must be an integer, not '1k'"),
        ({"check.crcs": "maybe"}, "check.crcs must be true or false"),
        ({"auto.offset.reset": "oldest"}, "auto.offset.reset must be one of"),
        ({"max.poll.records": "0"}, "max.poll.records must be at least 1, not 0"),
    ],
)
def test_from_properties_errors(properties: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidConfigError) as err:
        ConsumerConfig.from_properties({"bootstrap.servers": SERVERS, **properties})
    assert message in err.value.message
    if "unknown" in message:
        assert "auto.offset.reset" in err.value.message  # lists the known names
