"""Leader changes through the Kafka listener (one controller, two brokers, a topic with one
partition on both): the broker that does not lead answers NOT_LEADER_OR_FOLLOWER naming the
leader, and confluent-kafka producing with acks=all through a kill -9 of the leader loses no
record it was told was written."""

from __future__ import annotations

import asyncio
import datetime
import io
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from kio.schema.errors import ErrorCode
from kio.schema.produce.v10 import ProduceRequest, ProduceResponse
from kio.schema.produce.v10.request import PartitionProduceData, TopicProduceData
from kio.schema.request_header.v2.header import RequestHeader
from kio.schema.types import TopicName
from kio.serial import entity_reader, entity_writer
from kio.static.primitive import i16, i32, i32Timedelta

from raftka.common.records.builder import build_batch
from raftka.ops.local_cluster import LocalCluster
from tests.integration.support.brokers import (
    start_broker_cluster,
    stop_broker_cluster,
    wait_partition_leaders,
)

pytestmark = pytest.mark.integration

TOPIC = "failover"


@pytest.fixture
def kafka_pair(tmp_path: Any) -> Iterator[LocalCluster]:
    c = start_broker_cluster(tmp_path / "kafka", controllers=1, brokers=2, kafka=True)
    try:
        yield c
    finally:
        stop_broker_cluster(c)


def kafka_address(cluster: LocalCluster, broker_id: int) -> str:
    node = cluster.brokers[broker_id]
    return f"{node.host}:{node.kafka_port}"


def raw_produce(address: str, batch: bytes) -> Any:
    """One Produce v10 (acks=1) of ``batch`` to partition 0; the decoded answer."""
    buffer = io.BytesIO()
    entity_writer(RequestHeader)(
        buffer,
        RequestHeader(
            request_api_key=i16(0),
            request_api_version=i16(10),
            correlation_id=i32(1),
            client_id="t",
        ),
    )
    request = ProduceRequest(
        transactional_id=None,
        acks=i16(1),
        timeout=i32Timedelta.parse(datetime.timedelta(seconds=5)),
        topic_data=(
            TopicProduceData(
                name=TopicName(TOPIC),
                partition_data=(PartitionProduceData(index=i32(0), records=batch),),  # type: ignore[arg-type]
            ),
        ),
    )
    entity_writer(ProduceRequest)(buffer, request)
    payload = buffer.getvalue()
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(struct.pack(">i", len(payload)) + payload)
        size = struct.unpack(">i", sock.recv(4, socket.MSG_WAITALL))[0]
        frame = sock.recv(size, socket.MSG_WAITALL)
    # Response header v1: correlation id and (empty) tagged fields, then the body.
    assert struct.unpack_from(">i", frame)[0] == 1
    answer, _ = entity_reader(ProduceResponse)(frame, 5)
    return answer


def test_not_the_leader_answers_not_leader_with_the_leader_and_acks_survive_a_kill(
    kafka_pair: LocalCluster,
) -> None:
    first, second = sorted(kafka_pair.brokers)
    bootstrap = ",".join(kafka_pair.kafka_bootstrap_servers)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(TOPIC, 1, 2)]).values():
        future.result(15)
    leader = asyncio.run(wait_partition_leaders(kafka_pair, TOPIC, 1))[0]
    follower = second if leader == first else first

    batch = bytes(build_batch([(0, b"k", b"v", ())]))
    wrong = raw_produce(kafka_address(kafka_pair, follower), batch)
    (part,) = wrong.responses[0].partition_responses
    assert part.error_code == ErrorCode.not_leader_or_follower
    assert part.current_leader.leader_id == leader
    right = raw_produce(kafka_address(kafka_pair, leader), batch)
    assert right.responses[0].partition_responses[0].error_code == ErrorCode.none

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "message.timeout.ms": 30000,
        }
    )
    acked: set[bytes] = set()

    def delivered(error: object, message: Any) -> None:
        if error is None:
            acked.add(message.value())

    for i in range(200):
        producer.produce(TOPIC, value=f"r{i}".encode(), on_delivery=delivered)
        if i == 99:
            assert producer.flush(15) == 0
            assert len(acked) == 100
            kafka_pair.kill(leader)
    assert producer.flush(40) == 0, "records left undelivered"
    assert len(acked) == 200, f"only {len(acked)} of 200 acknowledged"

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_address(kafka_pair, follower),
            "group.id": "unused",
            # No group coordinator here yet: an auto-commit at close would wait for one.
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(TOPIC, 0, 0)])
    seen: set[bytes] = set()
    deadline = time.monotonic() + 20
    try:
        while not acked <= seen and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                value = message.value()
                assert value is not None
                seen.add(value)
    finally:
        consumer.close()
    assert acked - seen == set(), "acknowledged records lost"
