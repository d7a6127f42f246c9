"""Client settings given by Kafka's dotted names (``{"linger.ms": "10"}``), as read from a
properties file or a command line: one parser for the producer's and the consumer's configs.
Values may be strings; each is converted to the type of the setting's default."""

from __future__ import annotations

import collections.abc
import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from raftka.common.errors import InvalidConfigError

T = TypeVar("T")


def from_properties(
    cls: type[T], properties: Mapping[str, object], what: str, **overrides: Any
) -> T:
    """Build the settings dataclass ``cls`` from dotted (or Python) names. Unknown names are
    errors listing the known ones, and a refused value is reported under the name given."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    given: dict[str, str] = {}
    for raw_name, raw_value in properties.items():
        name = raw_name.strip().replace(".", "_")
        if name not in fields:
            known = ", ".join(sorted(n.replace("_", ".") for n in fields))
            raise InvalidConfigError(
                f"unknown {what} setting {raw_name!r}; the settings are: {known}"
            )
        kwargs[name] = coerce(raw_name, hints[name], raw_value)
        given[name] = raw_name
    kwargs.update(overrides)
    try:
        return cls(**kwargs)
    except InvalidConfigError as e:
        for name, raw_name in given.items():
            if e.message.startswith(name):
                raise InvalidConfigError(raw_name + e.message[len(name) :]) from None
        raise


def coerce(name: str, hint: Any, value: object) -> object:
    """``value`` as the setting's declared type ``hint`` when it is a string (from a file or a
    command line); other values pass through for the settings class to check. The type comes
    from the declaration, not the default, so ``enable.idempotence=false`` is False even
    though the default is None."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        hint = args[0] if len(args) == 1 else str
    if optional and text.lower() in ("", "none", "null"):
        return None
    if hint is bool:
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        raise InvalidConfigError(f"{name} must be true or false, not {value!r}")
    if hint is int:
        try:
            return int(text)
        except ValueError:
            raise InvalidConfigError(f"{name} must be an integer, not {value!r}") from None
    if hint is float:
        try:
            return float(text)
        except ValueError:
            raise InvalidConfigError(f"{name} must be a number, not {value!r}") from None
    if typing.get_origin(hint) in (tuple, list, collections.abc.Sequence):
        return [a.strip() for a in text.split(",") if a.strip()]
    if hint is str or typing.get_origin(hint) is typing.Literal:
        return text
    raise InvalidConfigError(f"{name} cannot be given as text; set it from code")
