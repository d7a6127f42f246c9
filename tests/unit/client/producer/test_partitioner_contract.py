"""The key -> partition vectors documented in broker.proto (ProduceRequest) are what the
partitioner computes, so a client author in another language can test against them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import raftka.v1
from raftka.client.producer.partitioner import murmur2, partition_for_key

BROKER_PROTO = Path(raftka.v1.__file__).parent / "broker.proto"
HEADER = re.compile(r"^//\s*\|\s*key\s*\|\s*murmur2\s*\|(.*)\|\s*$")
ROW = re.compile(r"^//\s*\|(.*)\|\s*$")
REQUIRED_KEYS = {"", "a", "orders-42", "user-1"}


def _partition_count(cell: str) -> int:
    match = re.fullmatch(r"(\d+) partitions", cell.strip())
    assert match is not None, f"a column header reads '<n> partitions', not {cell!r}"
    return int(match.group(1))


def documented_vectors() -> tuple[list[int], list[tuple[str, int, list[int]]]]:
    """The partition counts of the table's columns, and (key, murmur2, partitions) per row."""
    lines = BROKER_PROTO.read_text().splitlines()
    starts = [i for i, line in enumerate(lines) if HEADER.match(line)]
    assert len(starts) == 1, "broker.proto must have exactly one key | murmur2 | ... table"
    header = HEADER.match(lines[starts[0]])
    assert header is not None
    counts = [_partition_count(cell) for cell in header.group(1).split("|")]
    rows = []
    for line in lines[starts[0] + 2 :]:
        match = ROW.match(line)
        if match is None:
            break
        key, hashed, *partitions = (cell.strip() for cell in match.group(1).split("|"))
        assert len(partitions) == len(counts), line
        rows.append((json.loads(key), int(hashed), [int(p) for p in partitions]))
    return counts, rows


def test_documented_vectors_cover_the_required_keys_and_counts() -> None:
    counts, rows = documented_vectors()
    assert {3, 6} <= set(counts)
    assert {key for key, _, _ in rows} >= REQUIRED_KEYS


def test_documented_vectors_match_the_partitioner() -> None:
    counts, rows = documented_vectors()
    for key, hashed, partitions in rows:
        data = key.encode()
        assert murmur2(data) == hashed, key
        assert [partition_for_key(data, n) for n in counts] == partitions, key
        assert partitions == [(hashed & 0x7FFFFFFF) % n for n in counts], key


def test_documented_recipe_names_kafkas_constants() -> None:
    text = BROKER_PROTO.read_text()
    for constant in ("0x9747b28c", "0x5bd1e995", "0x7fffffff"):
        assert constant in text
