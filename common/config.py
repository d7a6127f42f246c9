"""Node configuration: one TOML file per node, command-line overrides on top.

A config is a tree of frozen dataclasses. ``load_config`` reads the TOML file, applies
``section.key=value`` overrides (from ``--set`` flags), checks every value's type, and reports
the first problem with the key's dotted path, e.g.::

    controller.election_timeout_ms: expected an integer, got 'soon'

Unknown keys are errors too, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from raftka.common.errors import ConfigFileError

T = TypeVar("T")


def load_config(
    cls: type[T],
    path: Path | None,
    overrides: Sequence[str] = (),
    base: Mapping[str, Any] | None = None,
) -> T:
    """Build ``cls`` from ``base`` (defaults supplied by the caller), then the TOML file at
    ``path`` (if any), then ``overrides`` of the form ``a.b=value``."""
    tree: dict[str, Any] = _deep_copy(base or {})
    if path is not None:
        try:
            with path.open("rb") as f:
                _merge(tree, tomllib.load(f))
        except FileNotFoundError:
            raise ConfigFileError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigFileError(f"config file {path} is not valid TOML: {e}") from None
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigFileError(f"override {item!r} must look like section.key=value")
        _set_path(tree, key.strip().split("."), _parse_scalar(raw.strip()))
    return build(cls, tree, prefix="")


def check_host_port(key: str, address: str) -> None:
    """Refuse a listen address that is not ``host:port`` (port 0..65535)."""
    host, colon, port = address.rpartition(":")
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigFileError(f"{key}: {address!r} is not host:port (e.g. 127.0.0.1:9092)")


def build(cls: type[T], data: Mapping[str, Any], prefix: str) -> T:
    """Build the dataclass ``cls`` from a mapping, checking names and types."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = prefix.rstrip(".") or "top level"
        raise ConfigFileError(
            f"unknown config key {prefix}{unknown[0]} (known keys at {where}: "
            + ", ".join(sorted(fields))
            + ")"
        )
    values: dict[str, Any] = {}
    for name, value in data.items():
        values[name] = _coerce(hints[name], value, f"{prefix}{name}")
    try:
        return cls(**values)
    except TypeError as e:
        raise ConfigFileError(f"{prefix.rstrip('.') or 'config'}: {e}") from None
    except ValueError as e:
        raise ConfigFileError(str(e)) from None


def _coerce(hint: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, path)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(value, Mapping):
            raise ConfigFileError(f"{path}: expected a table, got {value!r}")
        return build(hint, value, prefix=f"{path}.")
    if origin is tuple:
        (item_type, *_rest) = typing.get_args(hint)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigFileError(f"{path}: expected a list, got {value!r}")
        return tuple(_coerce(item_type, v, f"{path}[{i}]") for i, v in enumerate(value))
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigFileError(f"{path}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigFileError(f"{path}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigFileError(f"{path}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigFileError(f"{path}: expected a string, got {value!r}")
    if hint is Path:
        if isinstance(value, str | Path):
            return Path(value)
        raise ConfigFileError(f"{path}: expected a path, got {value!r}")
    if typing.get_origin(hint) is typing.Literal:
        allowed = typing.get_args(hint)
        if value in allowed:
            return value
        raise ConfigFileError(
            f"{path}: expected one of {', '.join(map(str, allowed))}, got {value!r}"
        )
    raise ConfigFileError(f"{path}: unsupported config type {hint!r}")


def _parse_scalar(raw: str) -> Any:
    """Parse an override's value as a TOML value when it is one, else keep it as a string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _set_path(tree: dict[str, Any], keys: list[str], value: Any) -> None:
    node = tree
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigFileError(f"override {'.'.join(keys)}: {key} is not a table")
        node = child
    node[keys[-1]] = value


def _merge(into: dict[str, Any], other: Mapping[str, Any]) -> None:
    for key, value in other.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = _deep_copy(value) if isinstance(value, Mapping) else value


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}
