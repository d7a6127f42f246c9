"""A stand-in controller and backend for the Kafka admin handlers' tests: the controller
records what it was asked and answers what the test says; a denying guard refuses the caller
everything but its grants."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar, cast

from kio.serial import entity_writer

from raftka.broker.config import BrokerConfig
from raftka.broker.kafka.backend import KafkaBackend
from raftka.broker.kafka.dispatch import RequestContext
from raftka.broker.kafka.schema import build, nested, request_type
from raftka.common.security.caller import bind_caller, reset_caller
from raftka.common.security.guard import OPEN_GUARD, AccessGuard, DenialLog
from tests.unit.common.security.fakes import FakeAuthorizer, Grant, caller

T = TypeVar("T")

BROKER_ID = 1
ALICE = "User:alice"


class FakeController:
    """Answers each call with the next prepared answer for that method (an exception is
    raised), recording the arguments."""

    def __init__(self, **answers: Any) -> None:
        self.answers = answers
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, method: str) -> Any:
        if method not in self.answers:
            raise AttributeError(method)

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((method, args, kwargs))
            answer = self.answers[method]
            if isinstance(answer, Exception):
                raise answer
            return answer

        return call


class FakeImage:
    def __init__(self, brokers: dict[int, Any] | None = None) -> None:
        self.brokers = brokers or {}


def backend(
    controller: FakeController | None = None,
    *,
    guard: AccessGuard = OPEN_GUARD,
    image: FakeImage | None = None,
    config: BrokerConfig | None = None,
) -> KafkaBackend:
    nothing = cast(Any, None)
    return KafkaBackend(
        broker_id=BROKER_ID,
        cluster_id="cluster-1",
        replicas=nothing,
        image=lambda: cast(Any, image or FakeImage()),
        producer_ids=nothing,
        controller=cast(Any, controller or FakeController()),
        traffic=nothing,
        guard=guard,
        config=config,
    )


def denying_guard(*grants: Grant) -> AccessGuard:
    return AccessGuard(FakeAuthorizer(grants), denials=DenialLog(clock=lambda: 0.0))


def run_as(principal: str, job: Coroutine[Any, Any, T]) -> T:
    async def bound() -> T:
        token = bind_caller(caller(principal))
        try:
            return await job
        finally:
            reset_caller(token)

    return asyncio.run(bound())


def context(api_key: int, version: int) -> RequestContext:
    return RequestContext(api_key, version, 7, "test", "127.0.0.1:1")


def request(api_key: int, version: int, **values: Any) -> Any:
    return build(request_type(api_key, version), **values)


def part(api_key: int, version: int, type_name: str, **values: Any) -> Any:
    return build(nested(request_type(api_key, version), type_name), **values)


def encodes(entity: Any) -> bytes:
    """The entity's bytes on the wire (kio refuses an entity of the wrong shape)."""
    buffer = io.BytesIO()
    entity_writer(type(entity))(buffer, entity)
    return buffer.getvalue()


def versions(low: int, high: int) -> Iterable[int]:
    return range(low, high + 1)
