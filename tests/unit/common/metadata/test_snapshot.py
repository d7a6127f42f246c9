"""Snapshot round trips, property-style: random valid record sequences from seeded rngs."""

from __future__ import annotations

import random

import pytest

from raftka.common.metadata.image import MetadataImage
from raftka.common.metadata.records import (
    FENCE,
    NO_CHANGE,
    UNFENCE,
    config_record,
    no_op_record,
    partition_change_record,
    producer_ids_record,
    registration_change_record,
    remove_topic_record,
    topic_config_record,
    topic_record,
    unregister_broker_record,
)
from raftka.v1.common_pb2 import ResourceType
from raftka.v1.metadata_pb2 import MetadataBatch, MetadataRecord, MetadataSnapshot

from .builders import broker, partition

BROKER_IDS = range(6)
TOPIC_NAMES = ["a", "b", "c", "d.e", "f_g"]


def _subset(rng: random.Random, pool: list[int], low: int) -> list[int]:
    return rng.sample(pool, rng.randint(low, len(pool)))


def _random_partition(rng: random.Random, topic_id: str, partition_id: int) -> MetadataRecord:
    replicas = rng.sample(list(BROKER_IDS), rng.randint(1, 4))
    isr = _subset(rng, replicas, 1)
    leader = rng.choice([*isr, -1])
    return partition(
        topic_id,
        partition_id,
        replicas,
        isr=isr,
        leader=leader,
        adding=_subset(rng, replicas, 0) if rng.random() < 0.2 else (),
        removing=_subset(rng, replicas, 0) if rng.random() < 0.2 else (),
        recovery=rng.randint(0, 1),
        leader_epoch=rng.randint(0, 5),
        partition_epoch=rng.randint(0, 9),
    )


def _random_step(rng: random.Random, image: MetadataImage, index: int) -> list[MetadataRecord]:
    """One batch of valid records for ``image`` at ``index``."""
    kind = rng.randrange(10)
    brokers = list(image.brokers.values())
    topics = list(image.topics.values())
    if kind == 0 or (kind in (1, 2) and not brokers):
        return [
            broker(
                rng.choice(BROKER_IDS),
                epoch=index,
                incarnation=f"inc{index}",
                rack=rng.choice(["", "r1", "r2"]),
                fenced=rng.random() < 0.5,
            )
        ]
    if kind == 1:
        reg = rng.choice(brokers)
        return [
            registration_change_record(
                reg.broker_id,
                reg.epoch,
                fenced=rng.choice([FENCE, UNFENCE, NO_CHANGE]),
                in_controlled_shutdown=int(rng.random() < 0.3),
            )
        ]
    if kind == 2:
        reg = rng.choice(brokers)
        if rng.random() < 0.5:
            return [config_record(ResourceType.RESOURCE_TYPE_BROKER, str(reg.broker_id), "k", "v")]
        return [unregister_broker_record(reg.broker_id, reg.epoch)]
    if kind == 3 or not topics:
        free = [n for n in TOPIC_NAMES if image.topic(n) is None]
        if not free:
            return [no_op_record()]
        name, topic_id = rng.choice(free), f"id{index}"
        records = [topic_record(name, topic_id)]
        records += [_random_partition(rng, topic_id, p) for p in range(rng.randint(1, 3))]
        if rng.random() < 0.5:
            records.append(topic_config_record(name, "retention.ms", str(rng.randint(1, 99))))
        return records
    topic = rng.choice(topics)
    if kind in (4, 5):
        partition_id = rng.choice(list(topic.partitions))
        state = topic.partitions[partition_id]
        isr = _subset(rng, list(state.replicas), 1) if rng.random() < 0.6 else None
        members = list(state.isr if isr is None else isr)
        leader = rng.choice([*members, -1]) if rng.random() < 0.5 else None
        if leader is None and state.leader not in members:
            leader = -1
        return [
            partition_change_record(
                topic.topic_id,
                partition_id,
                isr=isr,
                leader=leader,
                leader_recovery_state=rng.choice([None, 0, 1]),
            )
        ]
    if kind == 6:
        return [_random_partition(rng, topic.topic_id, len(topic.partitions))]
    if kind == 7:
        return [remove_topic_record(topic.topic_id)]
    if kind == 8:
        value = rng.choice([None, "1", "2"])
        return [topic_config_record(topic.name, rng.choice(["segment.ms", "retention.ms"]), value)]
    return [producer_ids_record(0, 0, image.next_producer_id + rng.randint(1, 3000))]


def _random_log(seed: int, steps: int) -> list[MetadataBatch]:
    rng = random.Random(seed)
    image = MetadataImage()
    log = []
    for index in range(1, steps + 1):
        batch = MetadataBatch(records=_random_step(rng, image, index))
        image.apply_batch(batch, index)
        log.append(batch)
    return log


def _replay(
    log: list[MetadataBatch], start: int = 0, image: MetadataImage | None = None
) -> MetadataImage:
    image = MetadataImage() if image is None else image
    for offset, batch in enumerate(log[start:]):
        image.apply_batch(batch, start + offset + 1)
    return image


@pytest.mark.parametrize("seed", range(40))
def test_snapshot_round_trip_at_every_prefix(seed: int) -> None:
    log = _random_log(seed, 60)
    image = MetadataImage()
    for index, batch in enumerate(log, start=1):
        image.apply_batch(batch, index)
        records = image.to_snapshot_records()
        rebuilt = MetadataImage.from_records(records, index)
        assert rebuilt == image
        assert rebuilt.to_snapshot_records() == records  # snapshots are canonical


@pytest.mark.parametrize("seed", range(20))
def test_snapshot_then_tail_equals_full_replay(seed: int) -> None:
    log = _random_log(seed, 80)
    full = _replay(log)
    cut = random.Random(seed).randrange(len(log))
    prefix = _replay(log[:cut])
    snapshot = MetadataSnapshot.FromString(prefix.to_snapshot(last_term=3).SerializeToString())
    assert snapshot.last_index == cut and snapshot.last_term == 3
    resumed = _replay(log, cut, MetadataImage.from_snapshot(snapshot))
    assert resumed == full


@pytest.mark.parametrize("seed", range(10))
def test_copy_is_unaffected_by_later_records(seed: int) -> None:
    log = _random_log(seed, 60)
    image = _replay(log[:30])
    frozen = MetadataImage.from_records(image.to_snapshot_records(), 30)
    working = image.copy()
    _replay(log, 30, working)
    assert image == frozen
    assert working == _replay(log)


def test_snapshot_of_empty_image_is_empty() -> None:
    assert MetadataImage().to_snapshot_records() == []
    assert MetadataImage.from_records([]) == MetadataImage()


def test_generator_exercises_every_record_kind() -> None:
    kinds = {
        record.WhichOneof("record") for batch in _random_log(1, 300) for record in batch.records
    }
    assert kinds >= {
        "register_broker",
        "unregister_broker",
        "broker_registration_change",
        "topic",
        "partition",
        "partition_change",
        "remove_topic",
        "config",
        "producer_ids",
    }
