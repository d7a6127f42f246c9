from __future__ import annotations

from raftka.broker.groups.api import GroupConfig
from raftka.broker.groups.shard import ConsumerGroupShard
from raftka.broker.groups.state import CommittedOffset, GroupState


def test_committed_offsets_lists_every_group_partition_offset() -> None:
    shard = ConsumerGroupShard(0, GroupConfig())
    for group_id, offsets in (("a", {("t", 0): 5, ("t", 1): 7}), ("b", {("u", 0): 1})):
        group = shard.store.groups[group_id] = GroupState(group_id)
        for tp, offset in offsets.items():
            group.offsets[tp] = CommittedOffset(offset, -1, "", 0)
    assert sorted(shard.committed_offsets()) == [
        ("a", "t", 0, 5),
        ("a", "t", 1, 7),
        ("b", "u", 0, 1),
    ]
