"""Classic members (JoinGroup / SyncGroup / Heartbeat / LeaveGroup) in a consumer group."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from raftka.broker.groups.classic import (
    FENCED_INSTANCE_ID,
    ILLEGAL_GENERATION,
    INCONSISTENT_GROUP_PROTOCOL,
    INVALID_SESSION_TIMEOUT,
    MEMBER_ID_REQUIRED,
    NONE,
    REBALANCE_IN_PROGRESS,
    UNKNOWN_MEMBER_ID,
    ClassicJoin,
    ClassicLeaver,
    ClassicSync,
    JoinAnswer,
    LeaveAnswer,
    SyncAnswer,
    server_assignor,
)
from raftka.broker.groups.shard import ConsumerGroupShard
from raftka.v1.common_pb2 import ErrorCode

from .support import TP, ShardHarness

SESSION_MS = 10_000


class Classic(ShardHarness):
    def cjoin(
        self,
        member_id: str = "",
        owned: TP | None = None,
        *,
        protocols: tuple[str, ...] = ("range", "roundrobin"),
        required: bool = False,
        **fields: object,
    ) -> JoinAnswer:
        values: dict[str, object] = {
            "group_id": "g",
            "member_id": member_id,
            "instance_id": None,
            "protocol_type": "consumer",
            "protocols": protocols,
            "topics": ("t",),
            "owned": None if owned is None else {t: frozenset(ps) for t, ps in owned.items()},
            "rack_id": None,
            "session_timeout_ms": SESSION_MS,
            "rebalance_timeout_ms": 30_000,
            "member_id_required": required,
        }
        values.update(fields)
        outcome = self.shard.classic_join(
            ClassicJoin(**values),  # type: ignore[arg-type]
            now_ms=self.now_ms,
            topics=self.topics,
            client_id="cid",
            client_host="h",
        )
        self._take(outcome)  # type: ignore[arg-type]
        return outcome.response

    def sync(self, member_id: str, generation: int, name: str | None = "range") -> SyncAnswer:
        request = ClassicSync("g", member_id, generation, "consumer", name)
        outcome = self.shard.classic_sync(request, now_ms=self.now_ms)
        assert not outcome.records  # SyncGroup writes nothing
        return outcome.response

    def owned_after_sync(self, member_id: str, generation: int, name: str = "range") -> set[int]:
        answer = self.sync(member_id, generation, name)
        assert answer.error_code == NONE, answer.error_message
        return set(answer.assignment.get("t", frozenset()))

    def cbeat(self, member_id: str, generation: int) -> int:
        outcome = self.shard.classic_heartbeat("g", member_id, generation, now_ms=self.now_ms)
        return outcome.response[0]

    def leave(self, *leavers: ClassicLeaver) -> list[LeaveAnswer]:
        outcome = self.shard.classic_leave("g", leavers, now_ms=self.now_ms, topics=self.topics)
        self._take(outcome)  # type: ignore[arg-type]
        return outcome.response


def test_protocol_names_map_onto_server_assignors() -> None:
    assert server_assignor(["range", "roundrobin"]) == "range"
    assert server_assignor(["cooperative-sticky"]) == "uniform"
    assert server_assignor(["mine", "roundrobin"]) == "uniform"
    assert server_assignor(["mine"]) is None


def test_a_new_member_gets_an_id_then_every_partition() -> None:
    h = Classic({"t": 4})
    asked = h.cjoin(required=True)
    assert (asked.error_code, asked.member_id) == (MEMBER_ID_REQUIRED, "m1")
    assert h.shard.group_ids() == []  # nothing written for the id
    joined = h.cjoin("m1")
    assert (joined.error_code, joined.generation, joined.protocol_name) == (NONE, 1, "range")
    assert h.owned_after_sync("m1", 1) == {0, 1, 2, 3}
    assert h.cbeat("m1", 1) == NONE


def test_eager_members_converge_with_no_partition_owned_twice() -> None:
    h = Classic({"t": 6})
    a = h.cjoin()
    owned_a = h.owned_after_sync(a.member_id, a.generation)
    b = h.cjoin()
    # a has released nothing yet: b gets nothing, a must rejoin.
    owned_b = h.owned_after_sync(b.member_id, b.generation)
    assert owned_a == set(range(6)) and owned_b == set()
    assert h.cbeat(a.member_id, a.generation) == REBALANCE_IN_PROGRESS
    # Eager: a revokes everything, then joins reporting nothing owned.
    a = h.cjoin(a.member_id, {})
    owned_a = h.owned_after_sync(a.member_id, a.generation)
    assert len(owned_a) == 3
    assert h.cbeat(b.member_id, b.generation) == REBALANCE_IN_PROGRESS  # its share is free now
    b = h.cjoin(b.member_id, {})
    owned_b = h.owned_after_sync(b.member_id, b.generation)
    assert owned_a.isdisjoint(owned_b) and owned_a | owned_b == set(range(6))
    assert h.cbeat(a.member_id, a.generation) == NONE
    assert h.cbeat(b.member_id, b.generation) == NONE
    assert h.describe().state == "stable"


def test_a_cooperative_member_keeps_its_partitions_until_it_reports_them_revoked() -> None:
    h = Classic({"t": 4})
    coop = ("cooperative-sticky",)
    a = h.cjoin(protocols=coop)
    h.owned_after_sync(a.member_id, a.generation, "cooperative-sticky")
    b = h.cjoin(protocols=coop)
    assert b.protocol_name == "cooperative-sticky"
    # a rejoins still owning everything: it is told to keep half, its generation unchanged.
    again = h.cjoin(a.member_id, {"t": {0, 1, 2, 3}}, protocols=coop)
    assert again.generation == a.generation
    kept = set(h.sync(a.member_id, again.generation, "cooperative-sticky").assignment["t"])
    assert len(kept) == 2
    assert h.cbeat(a.member_id, again.generation) == REBALANCE_IN_PROGRESS
    # It revokes the rest and rejoins: it moves to the group's epoch; b then gets the rest.
    moved = h.cjoin(a.member_id, {"t": kept}, protocols=coop)
    assert moved.generation > a.generation
    assert h.cbeat(b.member_id, b.generation) == REBALANCE_IN_PROGRESS
    b = h.cjoin(b.member_id, {}, protocols=coop)
    got = set(h.sync(b.member_id, b.generation, "cooperative-sticky").assignment["t"])
    assert got == {0, 1, 2, 3} - kept


def test_refusals_carry_kafkas_codes_and_write_nothing() -> None:
    h = Classic({"t": 2})
    a = h.cjoin()
    written = len(h.log)
    assert h.cjoin(protocol_type="connect").error_code == INCONSISTENT_GROUP_PROTOCOL
    assert h.cjoin(protocols=()).error_code == INCONSISTENT_GROUP_PROTOCOL
    assert h.cjoin(session_timeout_ms=10).error_code == INVALID_SESSION_TIMEOUT
    many = tuple(f"p{i}" for i in range(65))
    assert h.cjoin(protocols=many).error_code == ErrorCode.INVALID_REQUEST
    assert h.cjoin(protocols=("x" * 250,)).error_code == ErrorCode.INVALID_REQUEST
    assert h.cjoin(topics=("",)).error_code == ErrorCode.INVALID_REQUEST
    # A member gone from the group that still claims partitions must drop them first.
    assert h.cjoin("expired", {"t": {0}}).error_code == UNKNOWN_MEMBER_ID
    assert h.sync("nobody", 1).error_code == UNKNOWN_MEMBER_ID
    assert h.sync(a.member_id, a.generation + 1).error_code == ILLEGAL_GENERATION
    assert h.sync(a.member_id, a.generation, "roundrobin").error_code == (
        INCONSISTENT_GROUP_PROTOCOL
    )
    assert h.cbeat(a.member_id, 7) == ILLEGAL_GENERATION
    assert h.cbeat("nobody", 1) == UNKNOWN_MEMBER_ID
    assert len(h.log) == written
    # A member of the consumer protocol cannot speak the classic one.
    consumer = h.join(rebalance_timeout_ms=5_000)
    assert h.cbeat(consumer.member_id, consumer.member_epoch) == INCONSISTENT_GROUP_PROTOCOL


def test_leave_frees_the_partitions_for_the_others() -> None:
    h = Classic({"t": 4})
    a = h.cjoin()
    b = h.cjoin()
    a = h.cjoin(a.member_id, {})
    h.owned_after_sync(a.member_id, a.generation)
    answers = h.leave(ClassicLeaver(a.member_id, None), ClassicLeaver("ghost", None))
    assert [(x.member_id, x.error_code) for x in answers] == [
        (a.member_id, NONE),
        ("ghost", UNKNOWN_MEMBER_ID),
    ]
    assert h.cbeat(a.member_id, a.generation) == UNKNOWN_MEMBER_ID
    assert h.cbeat(b.member_id, b.generation) == REBALANCE_IN_PROGRESS
    b = h.cjoin(b.member_id, {})
    assert h.owned_after_sync(b.member_id, b.generation) == {0, 1, 2, 3}


def test_leave_by_instance_id_checks_the_holder() -> None:
    h = Classic({"t": 2})
    a = h.cjoin(instance_id="i-1")
    wrong = h.leave(ClassicLeaver(a.member_id, "i-2"))
    assert wrong[0].error_code == FENCED_INSTANCE_ID
    by_instance = h.leave(ClassicLeaver("", "i-1"))
    assert (by_instance[0].member_id, by_instance[0].error_code) == (a.member_id, NONE)
    assert h.describe().state == "empty"


def test_a_silent_member_expires_after_its_session_timeout() -> None:
    h = Classic({"t": 2})
    a = h.cjoin()
    b = h.cjoin()
    h.tick(SESSION_MS - 1)
    # b waits for partitions a still owns: nothing to rejoin for yet (and b's session is fresh).
    assert h.cbeat(b.member_id, b.generation) == NONE
    h.tick(2)
    assert h.cbeat(a.member_id, a.generation) == UNKNOWN_MEMBER_ID
    assert h.cbeat(b.member_id, b.generation) == REBALANCE_IN_PROGRESS
    b = h.cjoin(b.member_id, {})
    assert h.owned_after_sync(b.member_id, b.generation) == {0, 1}


def test_the_coordinator_never_moves_a_classic_member_on_its_own() -> None:
    h = Classic({"t": 4})
    a = h.cjoin()
    h.join(rebalance_timeout_ms=5_000)  # a consumer-protocol member arrives
    assert not [p for p in h.pushes if p.member_id == a.member_id]
    # a's generation is still valid (its commits still match), and it is told to rejoin.
    assert h.cbeat(a.member_id, a.generation) == REBALANCE_IN_PROGRESS
    assert h.sync(a.member_id, a.generation).error_code == NONE


def test_classic_members_survive_a_replay() -> None:
    h = Classic({"t": 4})
    a = h.cjoin(protocols=("cooperative-sticky", "range"))
    fresh = ConsumerGroupShard(0, h.config)
    for record in h.log:
        fresh.replay(record)  # type: ignore[arg-type]
    fresh.loaded(h.now_ms)
    group = fresh.store.get("g")
    assert group is not None
    assert group.members[a.member_id].classic_protocols == ("cooperative-sticky", "range")
    sync = fresh.classic_sync(
        ClassicSync("g", a.member_id, a.generation, "consumer", "cooperative-sticky"),
        now_ms=h.now_ms,
    )
    assert (sync.response.error_code, set(sync.response.assignment["t"])) == (NONE, {0, 1, 2, 3})


def test_a_restarted_static_member_takes_over_its_instance_and_assignment() -> None:
    h = Classic({"t": 4})
    a = h.cjoin(instance_id="i-1")
    b = h.cjoin(instance_id="i-2")
    a = h.cjoin(a.member_id, {}, instance_id="i-1")
    kept = h.owned_after_sync(a.member_id, a.generation)
    assert kept and h.describe().group_epoch == 2
    # The process of i-1 restarts: a new member id, same instance id, while a still lives.
    again = h.cjoin(instance_id="i-1")
    assert again.error_code == NONE and again.member_id != a.member_id
    assert h.owned_after_sync(again.member_id, again.generation) == kept
    assert h.describe().group_epoch == 2  # no rebalance
    assert h.cbeat(a.member_id, a.generation) == UNKNOWN_MEMBER_ID
    assert h.cbeat(b.member_id, b.generation) == REBALANCE_IN_PROGRESS  # its share is free


@dataclass
class Client:
    """What a classic client holds, and how it follows its protocol (eager or cooperative)."""

    member_id: str
    generation: int
    cooperative: bool
    holds: set[int] = field(default_factory=set)
    alive: bool = True
    beat_ms: int = 0  # when it last heard from the coordinator


def _rejoin(h: Classic, c: Client) -> None:
    protocols = ("cooperative-sticky",) if c.cooperative else ("range", "roundrobin")
    name = protocols[0]
    while True:
        if not c.cooperative:
            c.holds = set()  # eager: revoke everything before joining
        answer = h.cjoin(c.member_id, {"t": c.holds}, protocols=protocols)
        assert answer.error_code == NONE, answer.error_message
        c.generation = answer.generation
        synced = h.sync(c.member_id, c.generation, name)
        assert synced.error_code == NONE, synced.error_message
        new = set(synced.assignment.get("t", frozenset()))
        revoked = c.holds - new
        c.holds = new
        if not (c.cooperative and revoked):
            return  # a cooperative client that revoked something joins again at once


@pytest.mark.parametrize("seed", range(8))
def test_mixed_eager_and_cooperative_members_never_share_a_partition(seed: int) -> None:
    rng = random.Random(seed)
    h = Classic({"t": 12})
    clients: list[Client] = []

    def beat(c: Client) -> None:
        code = h.cbeat(c.member_id, c.generation)
        if code == REBALANCE_IN_PROGRESS:
            _rejoin(h, c)
        else:
            assert code == NONE
        c.beat_ms = h.now_ms

    def check() -> None:
        held = [p for c in clients if c.alive for p in c.holds]
        assert len(held) == len(set(held)), f"a partition held twice: {sorted(held)}"

    for _step in range(150):
        live = [c for c in clients if c.alive]
        roll = rng.random()
        if roll < 0.15 or not live:
            c = Client("", -1, cooperative=rng.random() < 0.5)
            protocols = ("cooperative-sticky",) if c.cooperative else ("range",)
            joined = h.cjoin(protocols=protocols)
            c.member_id, c.generation = joined.member_id, joined.generation
            synced = h.sync(c.member_id, c.generation, protocols[0])
            c.holds = set(synced.assignment.get("t", frozenset()))
            c.beat_ms = h.now_ms
            clients.append(c)
        elif roll < 0.2 and len(live) > 1:
            c = rng.choice(live)
            assert h.leave(ClassicLeaver(c.member_id, None))[0].error_code == NONE
            c.alive, c.holds = False, set()
        elif roll < 0.23 and len(live) > 1:
            rng.choice(live).alive = False  # killed: holds nothing, silent until it expires
            for dead in clients:
                if not dead.alive:
                    dead.holds = set()
        else:
            beat(rng.choice(live))
        # A live client heartbeats every 3 s at least (well inside its 10 s session).
        for c in clients:
            if c.alive and h.now_ms - c.beat_ms >= 3_000:
                beat(c)
        h.tick(rng.choice((0, 200, 1_000)))
        check()
    # Quiet: the killed members expire, and the survivors' heartbeats and rejoins converge on
    # every partition, once each.
    live = [c for c in clients if c.alive]
    for _second in range(SESSION_MS // 1_000 + 5):
        h.tick(1_000)
        for c in live:
            beat(c)
        check()
    held = sorted(p for c in live for p in c.holds)
    assert held == list(range(12))
    assert all(h.cbeat(c.member_id, c.generation) == NONE for c in live)


def test_a_description_tells_classic_members_from_kip_848_ones() -> None:
    h = Classic({"t": 4})
    classic = h.cjoin()
    modern = h.join(member_id="modern")
    described = {m.member_id: m.classic for m in h.shard.describe_group("g").members}
    assert described == {classic.member_id: True, modern.member_id: False}
