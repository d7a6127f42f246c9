"""Client settings given by Kafka's dotted names (``{"linger.ms": "10"}``), as read from a
properties file or a command line: one parser for the producer's and the consumer's configs.
Values may be strings; each is converted to the type of the setting's default."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from raftka.common.errors import InvalidConfigError

T = TypeVar("T")


def from_properties(
    cls: type[T], properties: Mapping[str, object], what: str, **overrides: Any
) -> T:
    """Build the settings dataclass ``cls`` from dotted (or Python) names. Unknown names are
    errors listing the known ones, and a refused value is reported under the name given."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    given: dict[str, str] = {}
    for raw_name, raw_value in properties.items():
        name = raw_name.strip().replace(".", "_")
        if name not in fields:
            known = ", ".join(sorted(n.replace("_", ".") for n in fields))
            raise InvalidConfigError(
                f"unknown {what} setting {raw_name!r}; the settings are: {known}"
            )
        kwargs[name] = coerce(raw_name, _default(fields[name]), raw_value)
        given[name] = raw_name
    kwargs.update(overrides)
    try:
        return cls(**kwargs)
    except InvalidConfigError as e:
        for name, raw_name in given.items():
            if e.message.startswith(name):
                raise InvalidConfigError(raw_name + e.message[len(name) :]) from None
        raise


def _default(field: dataclasses.Field[Any]) -> object:
    if field.default is not dataclasses.MISSING:
        return field.default
    factory: Callable[[], object] | Any = field.default_factory
    return factory() if callable(factory) else None


def coerce(name: str, default: object, value: object) -> object:
    if not isinstance(value, str):
        return value
    text = value.strip()
    if isinstance(default, bool):
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        raise InvalidConfigError(f"{name} must be true or false, not {value!r}")
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            raise InvalidConfigError(f"{name} must be an integer, not {value!r}") from None
    if isinstance(default, (tuple, list)):
        return [a.strip() for a in text.split(",") if a.strip()]
    if default is None:
        return text or None
    return text
