"""Helpers for the Kafka handlers' unit tests: a backend of fakes, a caller-bound call that
also encodes the answer (so a field a version lacks, or a wrong type, fails the test)."""

from __future__ import annotations

import asyncio
import io
import random
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from kio.serial import entity_writer

from raftka.broker.groups.api import Outcome
from raftka.broker.kafka.backend import KafkaBackend
from raftka.broker.kafka.dispatch import Handler, RequestContext
from raftka.broker.kafka.schema import request_type
from raftka.common.errors import RaftkaError
from raftka.common.ids import BrokerEpoch, BrokerId, random_resource_id
from raftka.common.metadata.model import (
    KAFKA_LISTENER,
    BrokerEndpoint,
    BrokerRegistration,
    TopicImage,
)
from raftka.common.security.caller import bind_caller, reset_caller
from raftka.common.security.guard import OPEN_GUARD, AccessGuard
from tests.unit.broker.groups.support import ShardHarness
from tests.unit.common.security.fakes import FakeAuthorizer, Grant, caller

_T = TypeVar("_T")
ALICE = "User:alice"
UNUSED = cast(Any, object())


def denying_guard(grants: Iterable[Grant] = ()) -> AccessGuard:
    """A guard that allows ALICE exactly ``grants``."""
    return AccessGuard(FakeAuthorizer(grants))


def as_alice(coro: Coroutine[Any, Any, _T]) -> _T:
    async def bound() -> _T:
        token = bind_caller(caller(ALICE))
        try:
            return await coro
        finally:
            reset_caller(token)

    return asyncio.run(asyncio.wait_for(bound(), 10))


def request(api_key: int, version: int, **values: Any) -> Any:
    return request_type(api_key, version)(**values)


async def call(handler: Handler, api_key: int, version: int, entity: Any) -> Any:
    """Serve ``entity`` at ``version`` and encode the answer as the listener would."""
    answer = await handler(entity, RequestContext(api_key, version, 7, "test-client", "peer"))
    assert answer is not None
    entity_writer(type(answer))(io.BytesIO(), answer)
    return answer


@dataclass
class FakeImage:
    """The few calls handlers make on a MetadataImage: brokers by id."""

    registrations: dict[int, BrokerRegistration] = field(default_factory=dict)
    topics: dict[str, TopicImage] = field(default_factory=dict)

    def broker(self, broker_id: int) -> BrokerRegistration | None:
        return self.registrations.get(broker_id)

    def topic(self, name: str) -> TopicImage | None:
        return self.topics.get(name)

    def topic_by_id(self, topic_id: str) -> TopicImage | None:
        return next((t for t in self.topics.values() if t.topic_id == topic_id), None)

    def with_topics(self, *names: str) -> FakeImage:
        """Adds topics with random ids."""
        rng = random.Random(len(self.topics))
        for name in names:
            self.topics[name] = TopicImage(name, random_resource_id(rng))
        return self


def registration(broker_id: int, *, kafka_port: int | None, fenced: bool = False) -> Any:
    endpoints = [BrokerEndpoint("CLIENT", f"grpc-{broker_id}", 9000 + broker_id)]
    if kafka_port is not None:
        endpoints.append(BrokerEndpoint(KAFKA_LISTENER, f"host-{broker_id}", kafka_port))
    return BrokerRegistration(
        broker_id=BrokerId(broker_id),
        epoch=BrokerEpoch(1),
        incarnation_id="i",
        endpoints=tuple(endpoints),
        fenced=fenced,
    )


def backend(
    *,
    image: FakeImage | None = None,
    guard: AccessGuard = OPEN_GUARD,
    **parts: Any,
) -> KafkaBackend:
    shown = image or FakeImage()
    return KafkaBackend(
        broker_id=1,
        cluster_id="cluster",
        replicas=UNUSED,
        image=lambda: cast(Any, shown),
        producer_ids=UNUSED,
        controller=UNUSED,
        traffic=UNUSED,
        guard=guard,
        **parts,
    )


class ShardCoordinator:
    """A GroupCoordinator over one real shard (every group on it), failing every call with
    ``error`` when set (NOT_COORDINATOR, ...). Pushes reach no stream, as for Kafka clients."""

    def __init__(self, harness: ShardHarness) -> None:
        self.harness = harness
        self.error: RaftkaError | None = None

    def _check(self) -> None:
        if self.error is not None:
            raise self.error

    async def write(self, key: str, call: Callable[[Any, int], Outcome[_T]]) -> _T:
        self._check()
        outcome = call(self.harness.shard, self.harness.now_ms)
        self.harness._take(cast(Any, outcome))
        for push in outcome.pushes:  # as the runtime does: no member here has a stream
            self.harness.shard.not_told(push.group_id, push.member_id)
        return outcome.response

    async def read(self, key: str, call: Callable[[Any], _T]) -> _T:
        self._check()
        return call(self.harness.shard)

    async def read_all(self, call: Callable[[Any], list[_T]]) -> list[_T]:
        self._check()
        return call(self.harness.shard)

    def partition_of(self, key: str) -> int:
        self._check()
        return 0


@dataclass
class HarnessTopics:
    """``__consumer_offsets`` as the group operations read it: the harness's topics."""

    harness: ShardHarness

    def ensure(self) -> int | None:
        return 1

    def leader_of(self, partition: int) -> int:
        return 1

    def client_endpoint(self, broker_id: int) -> tuple[str, int] | None:
        return None

    def topics(self) -> Mapping[str, int]:
        return self.harness.topics


def group_backend(
    harness: ShardHarness, *, guard: AccessGuard = OPEN_GUARD, image: FakeImage | None = None
) -> tuple[KafkaBackend, ShardCoordinator]:
    """A backend whose group coordinator runs on ``harness``'s shard."""
    coordinator = ShardCoordinator(harness)
    return (
        backend(
            image=image,
            guard=guard,
            groups=cast(Any, coordinator),
            offsets_topic=cast(Any, HarnessTopics(harness)),
        ),
        coordinator,
    )
