"""A seeded run of the group coordinator with simulated members and a virtual clock.

One seed determines the whole run. Members join, leave, crash (stop for good), pause (for less
or more than their session timeout), restart as static members, change subscriptions; topics
grow and regex-matching topics appear. After every step the invariants hold (``check``); after
the faults stop and everyone heartbeats for a while, every subscribed partition is owned exactly
once and the groups are stable; a shard replayed from the compacted records matches.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from raftka.broker.groups.api import GroupConfig, Outcome, StoredRecord
from raftka.broker.groups.shard import ConsumerGroupShard
from raftka.broker.groups.state import STATIC_LEFT_EPOCH
from raftka.v1 import groups_pb2 as gpb
from raftka.v1.common_pb2 import ErrorCode

from .members import Pair, SimMember

STEP_MS = 100
HEARTBEAT_MS = 500
GROUPS = ("g1", "g2")


@dataclass(frozen=True, slots=True)
class SimSummary:
    seed: int
    steps: int
    events: int
    records: int
    max_epoch: int


class GroupSimulation:
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed * 31 + 7)
        self.config = GroupConfig(heartbeat_interval_ms=HEARTBEAT_MS, min_session_timeout_ms=500)
        self.shard = ConsumerGroupShard(0, self.config, new_member_id=self._never)
        self.topics: dict[str, int] = {"a": 3, "b": 4, "r-0": 2, "__internal": 2}
        self.now_ms = 0
        self.members: list[SimMember] = []
        self.log: list[StoredRecord] = []
        self.epochs: dict[str, int] = {}
        self.serial = 0
        self.events = 0
        self.zombie_commits = 0

    @staticmethod
    def _never() -> str:
        raise AssertionError("simulated members choose their own ids (KIP-1082)")

    # ---- driving the shard ----

    def _take(self, outcome: Outcome[object]) -> None:
        self.log.extend(outcome.records)
        for push in outcome.pushes:
            member = self._member(push.group_id, push.member_id)
            if (
                member is not None
                and member.streaming
                and member.active(self.now_ms)
                and member.epoch != 0
            ):
                member.on_response(push.response, self.now_ms, self.rng, HEARTBEAT_MS, pushed=True)

    def _member(self, group_id: str, member_id: str) -> SimMember | None:
        for m in self.members:
            if m.group_id == group_id and m.member_id == member_id and m.running:
                return m
        return None

    def heartbeat(
        self, member: SimMember, request: gpb.ConsumerGroupHeartbeatRequest | None = None
    ) -> None:
        outcome = self.shard.heartbeat(
            request if request is not None else member.request(),
            now_ms=self.now_ms,
            topics=self.topics,
            client_id="sim",
            client_host="127.0.0.1",
        )
        member.on_response(outcome.response, self.now_ms, self.rng, HEARTBEAT_MS)
        self._take(outcome)  # type: ignore[arg-type]

    def tick(self) -> None:
        self._take(self.shard.tick(now_ms=self.now_ms, topics=self.topics))  # type: ignore[arg-type]

    # ---- the run ----

    def new_member(self, *, instance_id: str = "") -> SimMember:
        self.serial += 1
        group_id = self.rng.choice(GROUPS)
        regex = "r-.*" if self.rng.random() < 0.3 else ""
        topics = self.rng.sample(["a", "b", "nope"], self.rng.randint(0 if regex else 1, 2))
        member = SimMember(
            group_id=group_id,
            member_id=f"{self.seed}-mem-{self.serial:03d}",
            topics=sorted(topics),
            regex=regex,
            instance_id=instance_id,
            assignor=self.rng.choice(("", "", "uniform", "range")),
            streaming=self.rng.random() < 0.7,
            session_timeout_ms=self.rng.choice((1_500, 3_000)),
            next_heartbeat_ms=self.now_ms,
        )
        self.members.append(member)
        return member

    def step(self) -> None:
        """Members act (release, heartbeat), then the coordinator's timers run."""
        for member in list(self.members):
            if not member.active(self.now_ms):
                continue
            member.maybe_release(self.now_ms)
            if member.in_flight is not None:  # one heartbeat in flight at a time
                if member.deliver_at_ms <= self.now_ms:
                    request, member.in_flight = member.in_flight, None
                    self.heartbeat(member, request)
                    self.check()
                continue
            if member.next_heartbeat_ms <= self.now_ms:
                delay = self.rng.choice((0, 0, 0, 100, 200))
                if delay:  # pushes may reach the member while its report travels
                    member.in_flight = member.request()
                    member.deliver_at_ms = self.now_ms + delay
                    continue
                self.heartbeat(member)
                self.check()
                if member.maybe_release(self.now_ms):  # released at once
                    self.heartbeat(member)
                    self.check()
        self.tick()
        self.check()

    def fault(self) -> None:
        self.events += 1
        alive = [m for m in self.members if m.running and not m.left]
        roll = self.rng.random()
        if roll < 0.25 or not alive:
            static = self.rng.random() < 0.3
            self.new_member(instance_id=f"inst-{self.serial + 1}" if static else "")
            return
        member = self.rng.choice(alive)
        if roll < 0.35:  # leave for good
            self.heartbeat_special(member, -1)
            member.left = True
            member.stop()
        elif roll < 0.45:  # crash: stop heartbeating, consume nothing
            member.stop()
            if member.instance_id and self.rng.random() < 0.5:
                self.restart_static(member)
        elif roll < 0.6:  # pause below or above the session timeout
            member.paused_until_ms = self.now_ms + self.rng.choice(
                (500, 1_200, member.session_timeout_ms + 500)
            )
        elif roll < 0.7 and member.instance_id and member.epoch > 0:  # static bounce
            self.heartbeat_special(member, STATIC_LEFT_EPOCH)
            member.stop()
            self.restart_static(member)
        elif roll < 0.8:  # subscription change
            member.topics = sorted(self.rng.sample(["a", "b", "nope"], self.rng.randint(1, 2)))
            member.subscription_dirty = True
        elif roll < 0.9:  # a topic grows
            topic = self.rng.choice(["a", "b", "r-0"])
            self.topics[topic] += self.rng.randint(1, 2)
        else:  # a new topic the regex matches
            self.topics[f"r-{len(self.topics)}"] = self.rng.randint(1, 3)

    def heartbeat_special(self, member: SimMember, epoch: int) -> None:
        request = gpb.ConsumerGroupHeartbeatRequest(
            group_id=member.group_id, member_id=member.member_id, member_epoch=epoch
        )
        if epoch == STATIC_LEFT_EPOCH:
            request.instance_id = member.instance_id
        outcome = self.shard.heartbeat(
            request, now_ms=self.now_ms, topics=self.topics, client_id="sim", client_host="h"
        )
        self._take(outcome)  # type: ignore[arg-type]
        if epoch == -1 and member.epoch > 0:
            assert outcome.response.error_code in (
                ErrorCode.NONE,
                ErrorCode.UNKNOWN_MEMBER_ID,
            ), outcome.response

    def restart_static(self, old: SimMember) -> None:
        """The same instance id comes back as a new process (new member id), sooner or later."""
        self.serial += 1
        new = SimMember(
            group_id=old.group_id,
            member_id=f"{self.seed}-mem-{self.serial:03d}",
            topics=old.topics,
            regex=old.regex,
            instance_id=old.instance_id,
            assignor=old.assignor,
            streaming=old.streaming,
            session_timeout_ms=old.session_timeout_ms,
            next_heartbeat_ms=self.now_ms
            + self.rng.choice((100, 800, old.session_timeout_ms + 1_000)),
        )
        self.members.append(new)

    def commit_round(self) -> None:
        """Active members commit what they own: accepted exactly when their epoch is current;
        a member the coordinator no longer knows (a zombie) is refused."""
        for member in self.members:
            if not member.running or member.epoch <= 0 or not member.owned:
                continue
            request = gpb.OffsetCommitRequest(
                group_id=member.group_id, member_id=member.member_id, member_epoch=member.epoch
            )
            for t, p in sorted(member.owned):
                request.topics.add(name=t).partitions.add(partition=p, offset=self.now_ms)
            outcome = self.shard.commit_offsets(request, now_ms=self.now_ms, topics=self.topics)
            self._take(outcome)  # type: ignore[arg-type]
            codes = {r.error_code for t in outcome.response.topics for r in t.partitions}
            group = self.shard.store.get(member.group_id)
            known = group is not None and member.member_id in group.members
            current = group.current(member.member_id).member_epoch if known and group else None
            if current == member.epoch:
                assert codes == {ErrorCode.NONE}, (member, outcome.response)
            else:
                self.zombie_commits += 1
                assert ErrorCode.NONE not in codes, (member, current, outcome.response)

    def admin(self) -> None:
        """An admin acts on a random group: delete it (refused unless empty), delete offsets
        (refused while a member subscribes), or reset offsets with epoch -1 (accepted only on
        an empty group)."""
        gid = self.rng.choice(GROUPS)
        group = self.shard.store.get(gid)
        members = len(group.members) if group is not None else 0
        roll = self.rng.random()
        if roll < 0.3:
            outcome = self.shard.delete_groups([gid])
            self._take(outcome)  # type: ignore[arg-type]
            code = outcome.response[0].error_code
            if group is None:
                assert code == ErrorCode.GROUP_ID_NOT_FOUND
            elif members:
                assert code == ErrorCode.NON_EMPTY_GROUP
            else:
                assert code == ErrorCode.NONE and self.shard.store.get(gid) is None
                self.epochs.pop(gid, None)  # a new group of that name starts at epoch 1
        elif roll < 0.6:
            topic = self.rng.choice(["a", "b", "nope", "r-0"])
            request = gpb.OffsetDeleteRequest(
                group_id=gid, topics=[gpb.GroupTopicPartitions(topic=topic, partitions=[0])]
            )
            outcome2 = self.shard.delete_offsets(request)
            self._take(outcome2)  # type: ignore[arg-type]
            if group is None:
                assert outcome2.response.error_code == ErrorCode.GROUP_ID_NOT_FOUND
            else:
                (result,) = outcome2.response.topics[0].partitions
                subscribed = any(
                    topic in m.subscribed_topic_names
                    or (m.subscribed_topic_regex and re.fullmatch(m.subscribed_topic_regex, topic))
                    for m in group.members.values()
                )
                expected = ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC if subscribed else ErrorCode.NONE
                assert result.error_code == expected, (topic, result)
        else:
            request3 = gpb.OffsetCommitRequest(group_id=gid, member_epoch=-1)
            request3.topics.add(name="a").partitions.add(partition=0, offset=0)
            outcome3 = self.shard.commit_offsets(request3, now_ms=self.now_ms, topics=self.topics)
            self._take(outcome3)  # type: ignore[arg-type]
            (result3,) = outcome3.response.topics[0].partitions
            expected3 = ErrorCode.UNKNOWN_MEMBER_ID if members else ErrorCode.NONE
            assert result3.error_code == expected3, (gid, members, result3)

    # ---- invariants ----

    def check(self) -> None:
        for gid in GROUPS:
            group = self.shard.store.get(gid)
            if group is None:
                continue
            epoch = group.epoch or 0
            assert epoch >= self.epochs.get(gid, 0), f"{gid}: group epoch went back to {epoch}"
            self.epochs[gid] = epoch
            assert (group.assignment_epoch or 0) <= epoch
            owner: dict[Pair, str] = {}
            for member_id in group.members:
                current = group.current(member_id)
                assert current.member_epoch <= epoch, (member_id, current, epoch)
                for tps in (current.assigned, current.pending_revocation):
                    for t, ps in tps.items():
                        for p in ps:
                            assert (t, p) not in owner, (
                                f"{gid}: {t}-{p} owned by {owner[(t, p)]} and {member_id}"
                            )
                            owner[(t, p)] = member_id
            # What live members (known to the coordinator) really own is theirs there too.
            held: dict[Pair, str] = {}
            for m in self.members:
                if m.group_id != gid or not m.running or m.member_id not in group.members:
                    continue
                for tp in m.owned:
                    assert owner.get(tp) == m.member_id, (
                        f"{gid}: {m.member_id} owns {tp}, the coordinator says {owner.get(tp)}"
                    )
                    assert tp not in held, f"{gid}: {tp} owned by {held[tp]} and {m.member_id}"
                    held[tp] = m.member_id

    def check_replay(self) -> None:
        """A shard loaded from the whole log, and one loaded from the log as the cleaner
        leaves it (latest record per key, tombstoned keys gone), equal the live one."""
        latest: dict[bytes, int] = {}
        for i, record in enumerate(self.log):
            latest[record.key] = i
        compacted = [
            r for i, r in enumerate(self.log) if latest[r.key] == i and r.value is not None
        ]
        for records in (self.log, compacted):
            fresh = ConsumerGroupShard(0, self.config)
            for record in records:
                fresh.replay(record)
            fresh.loaded(self.now_ms)
            assert fresh.group_ids() == self.shard.group_ids()
            for gid in self.shard.group_ids():
                assert fresh.describe_group(gid) == self.shard.describe_group(gid), gid
                request = gpb.OffsetFetchRequest(group_id=gid)
                assert fresh.fetch_offsets(request) == self.shard.fetch_offsets(request), gid

    def check_settled(self) -> None:
        for gid in GROUPS:
            group = self.shard.store.get(gid)
            live = [m for m in self.members if m.group_id == gid and m.active(self.now_ms)]
            if group is None:
                assert not live, f"{gid}: members {live} but no group"
                continue
            assert group.state() in ("stable", "empty"), (gid, self.shard.describe_group(gid))
            assert {m.member_id for m in live} == set(group.members), gid
            wanted: set[Pair] = set()
            for meta in group.members.values():
                for t, n in self.topics.items():
                    if t in meta.subscribed_topic_names or (
                        meta.subscribed_topic_regex
                        and not t.startswith("__")
                        and re.fullmatch(meta.subscribed_topic_regex, t)
                    ):
                        wanted.update((t, p) for p in range(n))
            owned: list[Pair] = [tp for m in live for tp in m.owned]
            assert sorted(owned) == sorted(wanted), (gid, sorted(owned), sorted(wanted))

    def run(self, *, fault_steps: int = 300, settle_steps: int = 150) -> SimSummary:
        for _ in range(self.rng.randint(2, 5)):
            self.new_member(instance_id="" if self.rng.random() < 0.7 else f"i{self.serial}")
        steps = 0
        for _ in range(fault_steps):
            if self.rng.random() < 0.15:
                self.fault()
                self.check()
            if self.rng.random() < 0.1:
                self.commit_round()
            if self.rng.random() < 0.03:
                self.admin()
                self.check()
            self.step()
            self.now_ms += STEP_MS
            steps += 1
            if steps % 50 == 0:
                self.check_replay()
        # Quiescence: nobody pauses; every restarted process is running; time passes.
        for m in self.members:
            m.paused_until_ms = 0
            m.slow_revocations = False
        for _ in range(settle_steps):
            self.step()
            self.now_ms += STEP_MS
            steps += 1
        self.check_settled()
        self.check_replay()
        return SimSummary(
            self.seed, steps, self.events, len(self.log), max(self.epochs.values(), default=0)
        )
