"""Settings given as text (``--producer-property NAME=VALUE``) are parsed by their declared type,
whatever the default, and a value that does not parse is an error naming the property."""

from __future__ import annotations

import pytest

from raftka.client.consumer.config import ConsumerConfig
from raftka.client.producer.config import ProducerConfig
from raftka.common.errors import InvalidConfigError

SERVERS = "127.0.0.1:9092"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("false", False), ("FALSE", False), (" true ", True), ("", None), ("none", None)],
)
def test_an_optional_boolean_is_parsed_although_its_default_is_none(
    text: str, expected: bool | None
) -> None:
    config = ProducerConfig.from_properties(
        {"bootstrap.servers": SERVERS, "enable.idempotence": text}
    )
    assert config.enable_idempotence is expected


def test_enable_idempotence_false_turns_idempotence_off() -> None:
    """The defect this guards against: the string "false" is truthy in Python."""
    on = ProducerConfig.from_properties({"bootstrap.servers": SERVERS})
    off = ProducerConfig.from_properties(
        {"bootstrap.servers": SERVERS, "enable.idempotence": "false"}
    )
    assert off.enable_idempotence is False
    assert on.enable_idempotence is not False


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ({"enable.idempotence": "yes please"}, "enable.idempotence must be true or false"),
        ({"linger.ms": "soon"}, "linger.ms must be an integer"),
        ({"partitioner": "murmur2"}, "partitioner cannot be given as text"),
    ],
)
def test_a_value_that_does_not_parse_names_the_property(
    properties: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidConfigError, match=message):
        ProducerConfig.from_properties({"bootstrap.servers": SERVERS, **properties})


def test_consumer_booleans_and_numbers_parse_from_text() -> None:
    config = ConsumerConfig.from_properties(
        {"bootstrap.servers": SERVERS, "check.crcs": "false", "fetch.max.wait.ms": "250"}
    )
    assert config.check_crcs is False
    assert config.fetch_max_wait_ms == 250
    with pytest.raises(InvalidConfigError, match=r"check\.crcs must be true or false"):
        ConsumerConfig.from_properties({"bootstrap.servers": SERVERS, "check.crcs": "0"})
