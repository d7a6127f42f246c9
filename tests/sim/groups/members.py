"""Simulated consumers that follow KIP-848 the way a real client does.

A member heartbeats every interval with its epoch and the partitions it owns; it takes new
partitions from an answer (or a push) at once and gives revoked ones up after a delay (its
revocation callback), then heartbeats at once. On UNKNOWN_MEMBER_ID / FENCED_MEMBER_EPOCH it
drops everything and rejoins with epoch 0.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from raftka.v1 import groups_pb2 as gpb
from raftka.v1.common_pb2 import ErrorCode

Pair = tuple[str, int]


@dataclass
class SimMember:
    group_id: str
    member_id: str
    topics: list[str]
    regex: str = ""
    instance_id: str = ""
    assignor: str = ""
    streaming: bool = True  # False: unary heartbeats only, pushes never reach it
    session_timeout_ms: int = 3_000
    rebalance_timeout_ms: int = 2_000
    epoch: int = 0  # 0: (re)joining next
    owned: set[Pair] = field(default_factory=set)
    assigned: set[Pair] = field(default_factory=set)  # what the coordinator last said
    release_at_ms: int | None = None  # when the pending revocation completes
    next_heartbeat_ms: int = 0
    running: bool = True  # False: crashed or stopped
    paused_until_ms: int = 0
    subscription_dirty: bool = True
    left: bool = False  # sent -1 or -2; rejoins only if restarted
    in_flight: gpb.ConsumerGroupHeartbeatRequest | None = None  # sent, not yet delivered
    deliver_at_ms: int = 0
    slow_revocations: bool = True  # may take longer than the rebalance timeout to release

    def active(self, now_ms: int) -> bool:
        return self.running and now_ms >= self.paused_until_ms and not self.left

    def request(self) -> gpb.ConsumerGroupHeartbeatRequest:
        request = gpb.ConsumerGroupHeartbeatRequest(
            group_id=self.group_id, member_id=self.member_id, member_epoch=self.epoch
        )
        if self.epoch == 0 or self.subscription_dirty:
            request.rebalance_timeout_ms = self.rebalance_timeout_ms
            request.session_timeout_ms = self.session_timeout_ms
            request.subscription_set = True
            request.subscribed_topic_names.extend(self.topics)
            request.subscribed_topic_regex = self.regex
            if self.instance_id:
                request.instance_id = self.instance_id
            if self.assignor:
                request.server_assignor = self.assignor
        if self.epoch != 0:
            request.owned_partitions_set = True
            by_topic: dict[str, list[int]] = {}
            for t, p in sorted(self.owned):
                by_topic.setdefault(t, []).append(p)
            for t, ps in by_topic.items():
                request.owned_partitions.add(topic=t, partitions=ps)
        return request

    def on_response(
        self,
        response: gpb.ConsumerGroupHeartbeatResponse,
        now_ms: int,
        rng: random.Random,
        heartbeat_ms: int,
        *,
        pushed: bool = False,
    ) -> None:
        """An answer to a heartbeat, or a push (which must not delay the next heartbeat: a
        member that kept postponing it under a stream of pushes would lose its session)."""
        if response.error_code in (ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.FENCED_MEMBER_EPOCH):
            self.drop_all()
            self.next_heartbeat_ms = now_ms
            return
        if response.error_code != ErrorCode.NONE:  # e.g. UNRELEASED_INSTANCE_ID: retry later
            self.next_heartbeat_ms = now_ms + heartbeat_ms
            return
        self.subscription_dirty = False
        self.member_id = response.member_id
        self.epoch = response.member_epoch
        if not pushed:  # the coordinator says how often
            self.next_heartbeat_ms = now_ms + (response.heartbeat_interval_ms or heartbeat_ms)
        if response.has_assignment:
            self.take(response.assignment, now_ms, rng)

    def take(self, assignment: gpb.Assignment, now_ms: int, rng: random.Random) -> None:
        self.assigned = {(tp.topic, p) for tp in assignment.topic_partitions for p in tp.partitions}
        self.owned |= self.assigned  # new partitions are free: the coordinator checked
        if self.owned - self.assigned and self.release_at_ms is None:
            delays = (0, 0, 50, 300, 1_000, 2_500) if self.slow_revocations else (0, 50, 300)
            delay = rng.choice(delays)  # 2500: longer than the rebalance timeout (fenced)
            self.release_at_ms = now_ms + delay

    def maybe_release(self, now_ms: int) -> bool:
        if self.release_at_ms is None or now_ms < self.release_at_ms:
            return False
        self.release_at_ms = None
        self.owned &= self.assigned
        self.next_heartbeat_ms = now_ms  # tell the coordinator at once
        return True

    def stop(self) -> None:
        """The process ends (crash, leave, restart): it owns nothing, its request is lost."""
        self.running = False
        self.owned.clear()
        self.in_flight = None

    def drop_all(self) -> None:
        self.owned.clear()
        self.assigned.clear()
        self.release_at_ms = None
        self.epoch = 0
        self.subscription_dirty = True
