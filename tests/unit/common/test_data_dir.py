"""Generated cluster ids: Kafka's form, and never one that reads as a command-line option."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from raftka.common.data_dir import META_FILE, format_data_dir, new_cluster_id, read_identity
from raftka.common.errors import DataDirectoryError


def test_cluster_ids_are_22_url_safe_characters_never_starting_with_a_dash() -> None:
    ids = {new_cluster_id() for _ in range(5000)}  # a leading '-' would come once in 64 draws
    assert len(ids) == 5000
    for cluster_id in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id)
        assert not cluster_id.startswith("-")


def test_a_draw_that_would_start_with_a_dash_is_drawn_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 0xF8 = 0b111110_00: the first base64 digit is 62, which URL-safe base64 writes as '-'.
    draws = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x04" + bytes(15))])
    monkeypatch.setattr(uuid, "uuid4", lambda: next(draws))
    assert new_cluster_id() == "BAAAAAAAAAAAAAAAAAAAAA"


@pytest.mark.parametrize(
    ("content", "found"),
    [
        (bytes(range(256)), "utf-8"),  # binary garbage
        (b"", ""),
        (b"version=1\nnode.id=1\n", ""),  # cluster.id missing
        (b"version=1\ncluster.id=\nnode.id=1\n", "cluster.id ''"),
        (b"version=1\ncluster.id=a b\nnode.id=1\n", "cluster.id 'a b'"),
        (b"version=1\ncluster.id=abc\nnode.id=one\n", ""),
        (b"version=1\ncluster.id=abc\nnode.id=-4\n", "node.id -4"),
    ],
)
def test_a_damaged_meta_properties_is_refused_with_the_way_out(
    tmp_path: Path, content: bytes, found: str
) -> None:
    (tmp_path / META_FILE).write_bytes(content)
    with pytest.raises(DataDirectoryError) as info:
        read_identity(tmp_path)
    message = info.value.message
    assert f"{tmp_path / META_FILE} is damaged" in message
    assert "format it again" in message and found in message


def test_format_refuses_a_cluster_id_that_could_not_be_read_back(tmp_path: Path) -> None:
    for bad in ("", "a b", "x" * 65, "id\nnode.id=7"):
        with pytest.raises(DataDirectoryError, match="is not valid"):
            format_data_dir(tmp_path / "d", bad, 1)
        assert not (tmp_path / "d" / META_FILE).exists()
    format_data_dir(tmp_path / "d", "-starts-with-a-dash", 1)  # valid, if awkward on a CLI
    assert read_identity(tmp_path / "d").cluster_id == "-starts-with-a-dash"
