"""Generated cluster ids: Kafka's form, and never one that reads as a command-line option."""

from __future__ import annotations

import re
import uuid

import pytest

from raftka.common.data_dir import new_cluster_id


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
