"""Chooses the record-stream codec: the compiled accelerator (``_accel``, built from
common/records/_accel.c by ``pip install``) when it is there, else its pure-Python twin
(:mod:`~raftka.common.records.pycodec`), which behaves identically and is its specification.

Set ``RAFTKA_NO_ACCEL=1`` to force the pure-Python codec (before the first import of
raftka.common.records). :data:`IMPLEMENTATION` says which one this process uses.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Final, Literal

from raftka.common.records import pycodec

DISABLE_ENV: Final = "RAFTKA_NO_ACCEL"
"""The environment variable that forces the pure-Python codec when set to a non-empty value
other than 0."""


def compiled() -> ModuleType | None:
    """The C accelerator, or None when it was not built (whatever RAFTKA_NO_ACCEL says:
    tests use both codecs side by side)."""
    try:
        return importlib.import_module("raftka.common.records._accel")
    except ImportError:
        return None


def _disabled() -> bool:
    return os.environ.get(DISABLE_ENV, "") not in ("", "0")


def _choose() -> tuple[Literal["c", "python"], ModuleType]:
    module = None if _disabled() else compiled()
    if module is None:
        return "python", pycodec
    return "c", module


IMPLEMENTATION: Literal["c", "python"]
"""Which codec this process uses: "c" (the accelerator) or "python" (the fallback)."""
IMPLEMENTATION, _codec = _choose()

validate_records = pycodec.validate_records
decode_records = pycodec.decode_records
decode_records_as = pycodec.decode_records_as
encode_record = pycodec.encode_record
encode_records = pycodec.encode_records
if IMPLEMENTATION == "c":
    validate_records = _codec.validate_records
    decode_records = _codec.decode_records
    decode_records_as = _codec.decode_records_as
    encode_record = _codec.encode_record
    encode_records = _codec.encode_records

__all__ = [
    "DISABLE_ENV",
    "IMPLEMENTATION",
    "compiled",
    "decode_records",
    "decode_records_as",
    "encode_record",
    "encode_records",
    "validate_records",
]
