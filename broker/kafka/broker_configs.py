"""A broker's own settings as Kafka's DescribeConfigs shows a BROKER resource.

Raftka's broker settings are static (the ``[broker]`` table of the node's TOML file, read at
start), so every entry is read-only; they are named as in that file (``broker.listen``). An
entry whose value differs from the built-in default is reported as set in the file
(STATIC_BROKER_CONFIG), the others as DEFAULT_CONFIG: the broker does not keep which keys the
file spelled out. None of them is secret (security settings are not broker settings)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from raftka.broker.config import BrokerConfig
from raftka.common.metadata.topic_configs import ConfigType

SOURCE_TOPIC = 1
"""Kafka's ConfigSource numbers (DescribeConfigs v1+): a value set on the topic."""
SOURCE_STATIC_BROKER = 4
"""Set in the node's config file."""
SOURCE_DEFAULT = 5
"""The built-in default."""

KAFKA_CONFIG_TYPES = {
    ConfigType.BOOLEAN: 1,
    ConfigType.STRING: 2,
    ConfigType.INT: 3,
    ConfigType.LONG: 5,
    ConfigType.DOUBLE: 6,
    ConfigType.LIST: 7,
}
"""Kafka's ConfigType numbers (DescribeConfigs v3+) for Raftka's config types."""

BROKER_PREFIX = "broker."


@dataclass(frozen=True, slots=True)
class BrokerConfigEntry:
    name: str
    value: str
    source: int
    config_type: ConfigType


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _type_of(value: Any) -> ConfigType:
    if isinstance(value, bool):
        return ConfigType.BOOLEAN
    if isinstance(value, int):
        return ConfigType.LONG
    return ConfigType.STRING


def broker_config_entries(config: BrokerConfig) -> list[BrokerConfigEntry]:
    """Every setting of ``config``, by name."""
    entries = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        entries.append(
            BrokerConfigEntry(
                name=BROKER_PREFIX + f.name,
                value=_text(value),
                source=SOURCE_DEFAULT if value == f.default else SOURCE_STATIC_BROKER,
                config_type=_type_of(value),
            )
        )
    return sorted(entries, key=lambda e: e.name)
