"""The Kafka handlers ask the guard what the gRPC handlers ask it, and a refusal is the item's
Kafka error code, with nothing written, read or forwarded; client quotas hold their answers."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from collections.abc import Coroutine
from types import SimpleNamespace as Req
from typing import Any, cast

from kio.schema.errors import ErrorCode

from raftka.broker.kafka.acls import (
    CREATE_ACLS_KEY,
    DESCRIBE_ACLS_KEY,
    CreateAclsHandler,
    DescribeAclsHandler,
)
from raftka.broker.kafka.backend import KafkaBackend
from raftka.broker.kafka.dispatch import RequestContext
from raftka.broker.kafka.fetch import FETCH_KEY, LIST_OFFSETS_KEY, FetchHandler, ListOffsetsHandler
from raftka.broker.kafka.metadata import METADATA_KEY, MetadataHandler
from raftka.broker.kafka.produce import (
    INIT_PRODUCER_ID_KEY,
    PRODUCE_KEY,
    InitProducerIdHandler,
    ProduceHandler,
)
from raftka.broker.kafka.schema import topic_uuid
from raftka.broker.kafka.topics import (
    CREATE_TOPICS_KEY,
    DELETE_TOPICS_KEY,
    CreateTopicsHandler,
    DeleteTopicsHandler,
)
from raftka.broker.quotas.manager import CallerSensors
from raftka.common.ids import BrokerId
from raftka.common.metadata.image import MetadataImage
from raftka.common.metadata.model import PartitionState
from raftka.common.metadata.records import partition_record, topic_record
from raftka.common.security.caller import bind_caller
from raftka.common.security.guard import AccessGuard
from raftka.common.security.model import (
    CLUSTER_RESOURCE_NAME,
    OP_DESCRIBE,
    OP_WRITE,
    RESOURCE_CLUSTER,
    RESOURCE_TOPIC,
)
from tests.unit.common.security.fakes import FakeAuthorizer, caller

BOB = "User:bob"
STATE = PartitionState(replicas=(BrokerId(1),), isr=(BrokerId(1),), leader=BrokerId(1))
NO_TIME = datetime.timedelta(0)


class Untouchable:
    """Stands for the replicas, producer ids and controller: a refused request reaches none."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"a refused request used {name}")


def image() -> MetadataImage:
    records = [
        topic_record("events", "AAAAAAAAAAAAAAAAAAAAAg"),
        partition_record("AAAAAAAAAAAAAAAAAAAAAg", 0, STATE),
        topic_record("secret", "AAAAAAAAAAAAAAAAAAAAAw"),
        partition_record("AAAAAAAAAAAAAAAAAAAAAw", 0, STATE),
    ]
    return MetadataImage.from_records(records, 4)


def backend(*grants: tuple[int, int, str]) -> KafkaBackend:
    """Bob may do exactly ``grants`` (operation, resource type, name)."""
    authorizer = FakeAuthorizer((BOB, *g) for g in grants)
    untouchable = cast(Any, Untouchable())
    current = image()
    return KafkaBackend(
        broker_id=1,
        cluster_id="c",
        replicas=untouchable,
        image=lambda: current,
        producer_ids=untouchable,
        controller=untouchable,
        traffic=untouchable,
        guard=AccessGuard(authorizer),
    )


def as_bob(coro: Coroutine[Any, Any, Any]) -> Any:
    async def bound() -> Any:
        bind_caller(caller(BOB))  # this task's context only
        return await coro

    return asyncio.run(bound())


def context(key: int, version: int) -> RequestContext:
    return RequestContext(key, version, 1, "test", "10.0.0.9:5000")


def test_metadata_lists_only_what_the_caller_may_describe() -> None:
    handler = MetadataHandler(backend((OP_DESCRIBE, RESOURCE_TOPIC, "events")))
    listing = as_bob(handler(Req(topics=None), context(METADATA_KEY, 12)))
    assert [t.name for t in listing.topics] == ["events"]
    named = as_bob(
        handler(Req(topics=(Req(name="secret"), Req(name="events"))), context(METADATA_KEY, 12))
    )
    codes = {t.name: t.error_code for t in named.topics}
    assert codes == {"secret": ErrorCode.topic_authorization_failed, "events": ErrorCode.none}


def test_produce_without_write_is_refused_per_partition() -> None:
    request = Req(
        transactional_id=None,
        acks=-1,
        timeout=datetime.timedelta(seconds=1),
        topic_data=(Req(name="events", partition_data=(Req(index=0, records=b"x" * 70),)),),
    )
    answer = as_bob(ProduceHandler(backend())(request, context(PRODUCE_KEY, 9)))
    (topic,) = answer.responses
    assert [p.error_code for p in topic.partition_responses] == [
        ErrorCode.topic_authorization_failed
    ]
    assert "User:bob may not WRITE topic 'events'" in topic.partition_responses[0].error_message


def test_a_transactional_produce_needs_the_transactional_id_first() -> None:
    request = Req(
        transactional_id="txn-1",
        acks=-1,
        timeout=datetime.timedelta(seconds=1),
        topic_data=(Req(name="events", partition_data=(Req(index=0, records=b"x" * 70),)),),
    )
    answer = as_bob(
        ProduceHandler(backend((OP_WRITE, RESOURCE_TOPIC, "events")))(
            request, context(PRODUCE_KEY, 9)
        )
    )
    (topic,) = answer.responses
    assert topic.partition_responses[0].error_code == (
        ErrorCode.transactional_id_authorization_failed
    )


def test_fetch_and_list_offsets_without_read_or_describe_are_refused() -> None:
    fetch = Req(
        replica_id=-1,
        max_wait=NO_TIME,
        min_bytes=1,
        max_bytes=1 << 20,
        isolation_level=0,
        topics=(
            Req(
                topic="events",
                partitions=(
                    Req(
                        partition=0,
                        current_leader_epoch=-1,
                        fetch_offset=0,
                        last_fetched_epoch=-1,
                        partition_max_bytes=1 << 20,
                    ),
                ),
            ),
        ),
    )
    answer = as_bob(FetchHandler(backend())(fetch, context(FETCH_KEY, 12)))
    assert [p.error_code for t in answer.responses for p in t.partitions] == [
        ErrorCode.topic_authorization_failed
    ]
    offsets = Req(
        isolation_level=0,
        topics=(
            Req(
                name="events",
                partitions=(Req(partition_index=0, current_leader_epoch=-1, timestamp=-1),),
            ),
        ),
    )
    answer = as_bob(ListOffsetsHandler(backend())(offsets, context(LIST_OFFSETS_KEY, 6)))
    assert [p.error_code for t in answer.topics for p in t.partitions] == [
        ErrorCode.topic_authorization_failed
    ]


def test_init_producer_id_needs_idempotent_write_or_the_transactional_id() -> None:
    handler = InitProducerIdHandler(backend())
    idempotent = Req(transactional_id=None, transaction_timeout=NO_TIME)
    answer = as_bob(handler(idempotent, context(INIT_PRODUCER_ID_KEY, 4)))
    assert answer.error_code == ErrorCode.cluster_authorization_failed
    transactional = Req(transactional_id="txn-1", transaction_timeout=NO_TIME)
    answer = as_bob(handler(transactional, context(INIT_PRODUCER_ID_KEY, 4)))
    assert answer.error_code == ErrorCode.transactional_id_authorization_failed


def test_create_and_delete_topics_are_refused_before_the_controller() -> None:
    create = Req(
        topics=(
            Req(name="new", num_partitions=1, replication_factor=1, assignments=(), configs=()),
        ),
        validate_only=False,
    )
    answer = as_bob(CreateTopicsHandler(backend())(create, context(CREATE_TOPICS_KEY, 7)))
    assert [t.error_code for t in answer.topics] == [ErrorCode.topic_authorization_failed]
    delete = Req(topic_names=("events",))
    answer = as_bob(DeleteTopicsHandler(backend())(delete, context(DELETE_TOPICS_KEY, 5)))
    assert [t.error_code for t in answer.responses] == [ErrorCode.topic_authorization_failed]


def test_acl_administration_needs_cluster_permissions() -> None:
    creation = Req(
        resource_type=2,
        resource_name="events",
        resource_pattern_type=3,
        principal="User:bob",
        host="*",
        operation=2,
        permission_type=3,
    )
    # DESCRIBE on the cluster does not let bob create ACLs.
    granted = backend((OP_DESCRIBE, RESOURCE_CLUSTER, CLUSTER_RESOURCE_NAME))
    answer = as_bob(
        CreateAclsHandler(granted)(Req(creations=(creation,)), context(CREATE_ACLS_KEY, 3))
    )
    assert [r.error_code for r in answer.results] == [ErrorCode.cluster_authorization_failed]
    described = Req(
        resource_type_filter=1,
        resource_name_filter=None,
        pattern_type_filter=1,
        principal_filter=None,
        host_filter=None,
        operation=1,
        permission_type=1,
    )
    answer = as_bob(DescribeAclsHandler(backend())(described, context(DESCRIBE_ACLS_KEY, 3)))
    assert answer.error_code == ErrorCode.cluster_authorization_failed


class FakeSensor:
    """A quota sensor over its bound: every recording asks for a 40 ms throttle."""

    muted_until_ms = 0

    def __init__(self) -> None:
        self.recorded: list[float] = []

    def record(self, value: float, _now_ms: int) -> int:
        self.recorded.append(value)
        return 40


class FakeQuotas:
    def __init__(self, sensors: CallerSensors) -> None:
        self._sensors = sensors
        self.asked: list[tuple[str, str]] = []

    def sensors(self, user: str, client_id: str, _now_ms: int) -> CallerSensors:
        self.asked.append((user, client_id))
        return self._sensors

    def max_bytes_in_window(self, _sensor: object) -> int:
        return 1 << 20


def test_produce_and_fetch_answers_carry_the_quota_throttle() -> None:
    produce_sensor, fetch_sensor = FakeSensor(), FakeSensor()
    quotas = FakeQuotas(CallerSensors(cast(Any, produce_sensor), cast(Any, fetch_sensor), None))
    throttled = dataclasses.replace(backend(), quotas=cast(Any, quotas))
    request = Req(
        transactional_id=None,
        acks=-1,
        timeout=datetime.timedelta(seconds=1),
        topic_data=(Req(name="events", partition_data=(Req(index=0, records=b"x" * 70),)),),
    )
    answer = as_bob(ProduceHandler(throttled)(request, context(PRODUCE_KEY, 9)))
    assert answer.throttle_time == datetime.timedelta(milliseconds=40)
    assert produce_sensor.recorded == [70]  # the request's record bytes
    fetch = Req(
        replica_id=-1,
        max_wait=NO_TIME,
        min_bytes=1,
        max_bytes=1 << 20,
        isolation_level=0,
        topics=(Req(topic="events", partitions=(Req(partition=0, current_leader_epoch=-1,
            fetch_offset=0, last_fetched_epoch=-1, partition_max_bytes=1 << 20),)),),
    )  # fmt: skip
    answer = as_bob(FetchHandler(throttled)(fetch, context(FETCH_KEY, 12)))
    assert answer.throttle_time == datetime.timedelta(milliseconds=40)
    assert fetch_sensor.recorded == [0]
    # One budget per user and client id, as on gRPC.
    assert quotas.asked == [("bob", "test"), ("bob", "test")]


def test_a_topic_asked_by_id_that_may_not_be_described_is_unknown() -> None:
    handler = MetadataHandler(backend())
    secret_id = topic_uuid("AAAAAAAAAAAAAAAAAAAAAw")
    answer = as_bob(
        handler(Req(topics=(Req(name=None, topic_id=secret_id),)), context(METADATA_KEY, 12))
    )
    (topic,) = answer.topics
    assert (topic.name, topic.error_code) == (None, ErrorCode.unknown_topic_id)
