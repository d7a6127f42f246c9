"""Each batch's CRC-32C is computed once per append: by the leader's validator, or by the
follower's check of fetched batches; the segmented log takes the checked spans as they are."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import crc32c
import pytest

import raftka.common.records.batch as batch_module
from raftka.common.records import CorruptRecordError
from tests.unit.broker.support import T0, batch, open_partition

NOW = T0 + 5_000


class CrcCounter:
    """Counts CRC-32C computations of the record-batch codec."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        monkeypatch.setattr(batch_module, "crc32c", SimpleNamespace(crc32c=self._crc32c))

    def _crc32c(self, data: bytes | memoryview) -> int:
        self.calls += 1
        return int(crc32c.crc32c(data))

    def take(self) -> int:
        calls, self.calls = self.calls, 0
        return calls


def three_batches() -> bytes:
    return b"".join(bytes(batch(2, tag=i)) for i in range(3))


def test_leader_append_computes_each_crc_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plog = open_partition(tmp_path)
    data, single = three_batches(), bytes(batch(1))
    counter = CrcCounter(monkeypatch)  # after building the batches: building computes CRCs
    plog.append_as_leader(data, leader_epoch=1, now_ms=NOW)
    assert counter.take() == 3
    plog.append_as_leader(single, leader_epoch=1, now_ms=NOW)
    assert counter.take() == 1
    plog.close()


def test_log_append_time_adds_only_the_restamped_crc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plog = open_partition(tmp_path, overrides={"message.timestamp.type": "LogAppendTime"})
    data = three_batches()
    counter = CrcCounter(monkeypatch)
    plog.append_as_leader(data, leader_epoch=1, now_ms=NOW)
    assert counter.take() == 3 + 3  # one check, and one new CRC for the rewritten header
    plog.close()


def test_follower_append_computes_each_crc_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    leader = open_partition(tmp_path / "leader", hw_follows_log_end=False)
    follower = open_partition(tmp_path / "follower", hw_follows_log_end=False)
    leader.append_as_leader(three_batches(), leader_epoch=1, now_ms=NOW)
    fetched = leader.read(0, 1 << 20, max_offset=leader.log_end_offset).records
    counter = CrcCounter(monkeypatch)
    follower.append_as_follower(fetched)
    assert counter.take() == 3
    assert follower.read(0, 1 << 20, max_offset=follower.log_end_offset).records == fetched
    for plog in (leader, follower):
        plog.close()


def test_a_corrupt_batch_is_still_refused_once_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plog = open_partition(tmp_path)
    data = bytearray(three_batches())
    data[-1] ^= 0xFF
    counter = CrcCounter(monkeypatch)
    with pytest.raises(CorruptRecordError):
        plog.append_as_leader(bytes(data), leader_epoch=1, now_ms=NOW)
    with pytest.raises(CorruptRecordError):
        plog.append_as_follower(bytes(data))
    assert counter.take() == 6
    assert plog.log_end_offset == 0
    plog.close()
