"""The supported topic configs: type, default, validator and documentation.

Values travel and are stored as strings (as in Kafka); ``ConfigDef.parse`` turns one into its
typed value. ``validate_topic_configs`` checks a set of overrides and returns them normalized,
so that "  100" and "100", or "TRUE" and "true", are stored the same way.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from raftka.common.errors import InvalidConfigError

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
_INTEGER = re.compile(r"[+-]?[0-9]+")

ConfigValue = bool | int | str | tuple[str, ...]


class ConfigType(enum.Enum):
    BOOLEAN = "boolean"
    INT = "int"
    LONG = "long"
    STRING = "string"
    LIST = "list"
    """Comma-separated strings."""


@dataclass(frozen=True, slots=True)
class AtLeast:
    """A number no smaller than ``minimum``."""

    minimum: int

    def accepts(self, value: ConfigValue) -> bool:
        return isinstance(value, int) and value >= self.minimum

    def describe(self) -> str:
        return f">= {self.minimum}"


@dataclass(frozen=True, slots=True)
class OneOf:
    """One of ``choices`` (case-sensitive); for LIST configs, each element must be."""

    choices: tuple[str, ...]

    def accepts(self, value: ConfigValue) -> bool:
        if isinstance(value, tuple):
            return bool(value) and len(set(value)) == len(value) and set(value) <= set(self.choices)
        return value in self.choices

    def describe(self) -> str:
        return "one of " + ", ".join(self.choices)


Validator = AtLeast | OneOf


@dataclass(frozen=True, slots=True)
class ConfigDef:
    name: str
    type: ConfigType
    default: str
    doc: str
    validator: Validator | None = None

    def allowed(self) -> str:
        """What values are allowed, for error messages."""
        if self.type is ConfigType.BOOLEAN:
            return "true or false"
        kind = {ConfigType.INT: "an int", ConfigType.LONG: "a long"}.get(self.type, "")
        if isinstance(self.validator, OneOf):
            text = self.validator.describe()
            if self.type is ConfigType.LIST:
                text = "a comma-separated list of " + ", ".join(self.validator.choices)
            return text
        if self.validator is not None:
            return f"{kind} {self.validator.describe()}"
        return kind or "a string"

    def parse(self, raw: str) -> ConfigValue:
        """The typed value of ``raw``; raises InvalidConfigError naming the config."""
        value = self._parse_type(raw)
        if self.validator is not None and not self.validator.accepts(value):
            raise self._invalid(raw)
        return value

    def normalize(self, raw: str) -> str:
        """The canonical string form of a valid ``raw``."""
        value = self.parse(raw)
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, tuple):
            return ",".join(value)
        return str(value)

    def _parse_type(self, raw: str) -> ConfigValue:
        text = raw.strip()
        if self.type is ConfigType.BOOLEAN:
            if text.lower() in ("true", "false"):
                return text.lower() == "true"
            raise self._invalid(raw)
        if self.type in (ConfigType.INT, ConfigType.LONG):
            low, high = (INT_MIN, INT_MAX) if self.type is ConfigType.INT else (LONG_MIN, LONG_MAX)
            if not _INTEGER.fullmatch(text) or not low <= int(text) <= high:
                raise self._invalid(raw)
            return int(text)
        if self.type is ConfigType.LIST:
            return tuple(item.strip() for item in text.split(",")) if text else ()
        return text

    def _invalid(self, raw: str) -> InvalidConfigError:
        return InvalidConfigError(
            f"invalid value {raw!r} for topic config {self.name!r}: must be {self.allowed()}"
        )


def _def(
    name: str, type_: ConfigType, default: str, doc: str, validator: Validator | None = None
) -> tuple[str, ConfigDef]:
    return name, ConfigDef(name, type_, default, doc, validator)


_B, _I, _L, _S, _LIST = (
    ConfigType.BOOLEAN,
    ConfigType.INT,
    ConfigType.LONG,
    ConfigType.STRING,
    ConfigType.LIST,
)

TOPIC_CONFIGS: Mapping[str, ConfigDef] = MappingProxyType(
    dict(
        sorted(
            [
                _def(
                    "cleanup.policy",
                    _LIST,
                    "delete",
                    "Delete old segments by time/size (compact, the latest value per key, is not "
                    "implemented yet and is refused).",
                    OneOf(("delete", "compact")),
                ),
                _def(
                    "retention.ms",
                    _L,
                    "604800000",
                    "How long a segment is kept before deletion; -1 keeps it forever.",
                    AtLeast(-1),
                ),
                _def(
                    "retention.bytes",
                    _L,
                    "-1",
                    "Maximum partition size before old segments are deleted; -1 is unlimited.",
                    AtLeast(-1),
                ),
                _def(
                    "segment.bytes",
                    _I,
                    "1073741824",
                    "Size at which the active segment is rolled.",
                    AtLeast(14),
                ),
                _def(
                    "segment.ms",
                    _L,
                    "604800000",
                    "Age at which the active segment is rolled even if not full.",
                    AtLeast(1),
                ),
                _def(
                    "max.message.bytes",
                    _I,
                    "1048588",
                    "Largest record batch the topic accepts.",
                    AtLeast(0),
                ),
                _def(
                    "min.insync.replicas",
                    _I,
                    "1",
                    "Fewest in-sync replicas for an acks=all write to succeed.",
                    AtLeast(1),
                ),
                _def(
                    "unclean.leader.election.enable",
                    _B,
                    "false",
                    "Allow a replica outside the ISR to become leader, at the risk of data loss.",
                ),
                _def(
                    "compression.type",
                    _S,
                    "producer",
                    "Compression of stored batches; producer keeps the producer's codec.",
                    OneOf(("producer", "uncompressed", "gzip", "lz4", "zstd", "snappy")),
                ),
                _def(
                    "message.timestamp.type",
                    _S,
                    "CreateTime",
                    "Whether record timestamps are the producer's or the broker's append time.",
                    OneOf(("CreateTime", "LogAppendTime")),
                ),
                _def(
                    "message.timestamp.before.max.ms",
                    _L,
                    "9223372036854775807",
                    "How far (ms) a CreateTime record's timestamp may lie before the broker's "
                    "clock; older batches are refused with INVALID_TIMESTAMP.",
                    AtLeast(0),
                ),
                _def(
                    "message.timestamp.after.max.ms",
                    _L,
                    "3600000",
                    "How far (ms) a CreateTime record's timestamp may lie after the broker's "
                    "clock; later batches are refused with INVALID_TIMESTAMP.",
                    AtLeast(0),
                ),
                _def(
                    "flush.messages",
                    _L,
                    "9223372036854775807",
                    "Records appended between forced fsyncs of the log.",
                    AtLeast(1),
                ),
                _def(
                    "index.interval.bytes",
                    _I,
                    "4096",
                    "Bytes appended between offset-index entries.",
                    AtLeast(0),
                ),
                _def(
                    "file.delete.delay.ms",
                    _L,
                    "60000",
                    "Delay before a deleted segment's files are removed from disk.",
                    AtLeast(0),
                ),
            ]
        )
    )
)


def config_def(name: str) -> ConfigDef:
    """The definition of ``name``; raises InvalidConfigError for an unknown name."""
    definition = TOPIC_CONFIGS.get(name)
    if definition is None:
        raise InvalidConfigError(
            f"unknown topic config {name!r}; supported: {', '.join(TOPIC_CONFIGS)}"
        )
    return definition


def validate_topic_configs(configs: Mapping[str, str]) -> dict[str, str]:
    """Checks a topic's config overrides as a whole and returns them normalized (sorted by
    name). Raises InvalidConfigError naming the first bad config and what it allows.

    Refuses ``cleanup.policy`` with ``compact``: log compaction is not implemented yet, and a
    topic that asked for it would keep every record while its owner believed otherwise. (A
    value already stored, from before this check, still parses: such a topic is not
    compacted, and ``compact,delete`` applies the delete rules.)"""
    normalized = {name: config_def(name).normalize(configs[name]) for name in sorted(configs)}
    return normalized


def check_min_insync_replicas(configs: Mapping[str, str], replication_factor: int) -> None:
    """Refuses ``min.insync.replicas`` above the replication factor: no acks=all write to
    such a topic could ever succeed (Kafka would accept it and fail every such write with
    NOT_ENOUGH_REPLICAS; Raftka says so when the topic is created or configured)."""
    min_isr = topic_config_value(configs, "min.insync.replicas")
    if isinstance(min_isr, int) and 0 < replication_factor < min_isr:
        raise InvalidConfigError(
            f"min.insync.replicas {min_isr} is larger than the replication factor "
            f"{replication_factor}: no acks=all write could succeed; use at most "
            f"{replication_factor}, or add replicas first"
        )


def resolved_topic_configs(overrides: Mapping[str, str]) -> dict[str, str]:
    """Every supported config with the override if set, else the default."""
    return {name: overrides.get(name, d.default) for name, d in TOPIC_CONFIGS.items()}


def topic_config_value(overrides: Mapping[str, str], name: str) -> ConfigValue:
    """The typed effective value of config ``name`` given a topic's overrides."""
    definition = config_def(name)
    return definition.parse(overrides.get(name, definition.default))
