"""The issue's attacks, against real processes with TLS, mTLS and the authorizer on.

One cluster (3 controllers, 3 brokers, every node CN=node-<id> and a super user). The
attackers hold valid certificates from the cluster's own CA, so they get past the TLS
handshake and are authenticated; what stops them is authorization:

- ``User:mallory``, an ordinary client (WRITE on one topic, nothing else), forging node RPCs
  with raw gRPC stubs: Raft AppendEntries (a topic record, an undecodable entry), TimeoutNow,
  BrokerHeartbeat(want_shut_down / want_fence) for a real broker, RegisterBroker for a fake or
  a real id, AlterPartition shrinking an ISR, AllocateProducerIds, a follower Fetch in a real
  broker's name, and a batch fencing another client's idempotent producer id;
- ``User:fake-broker``, a would-be broker with a client certificate: it cannot register,
  heartbeat, alter an ISR or take producer ids;
- ``User:node-99``, named like a node but not one (not a super user, no CLUSTER_ACTION): it
  cannot vote or replicate.

Each attack is refused (PERMISSION_DENIED with ``raftka-error: CLUSTER_AUTHORIZATION_FAILED``,
or the per-item error code) and the test then checks that nothing changed. Positive controls
(the admin, a super user; clients with ACLs) show the refusals are not refusing everything.
The unit tests of the same checks: tests/unit/common/security/test_inter_node.py,
tests/unit/broker/test_service_authorization.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from raftka.client.consumer.consumer import AsyncConsumer
from raftka.client.producer.producer import AsyncProducer
from raftka.common.errors import RaftkaError
from raftka.common.records.batch import BatchHeader
from raftka.common.records.builder import build_batch
from raftka.common.security_errors import (
    TopicAuthorizationFailedError,
)
from raftka.v1 import broker_pb2 as bpb
from raftka.v1 import common_pb2 as cpb
from raftka.v1 import controller_pb2 as pb
from raftka.v1 import controller_pb2_grpc as pb_grpc
from raftka.v1 import metadata_pb2 as mpb
from raftka.v1 import raft_pb2 as rpb
from raftka.v1 import raft_pb2_grpc as rpb_grpc
from tests.conditions import eventually
from tests.integration.support.brokers import (
    wait_unfenced,
)
from tests.integration.support.identities import client_settings
from tests.integration.support.secured_cluster import (
    ALLOWED,
    GROUP_DENIED,
    GROUP_OK,
    MALLORY_TXN,
    OTHER,
    REPLICATED,
    RPC_TIMEOUT_S,
    Secured,
    admin_of,
    broker_stub,
    brokers,
    controller_channel,
    fetch_request,
    high_watermark,
    latest_offset,
    on_every_controller,
    partition_state,
    quorum_state,
    read_all,
    refused,
    secured_cluster,
    topic_names,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    with secured_cluster(tmp_path_factory.mktemp("attacks")) as s:
        yield s


def test_a_client_without_acls_is_refused_and_changes_nothing(secured: Secured) -> None:
    async def main() -> None:
        before = await topic_names(secured)
        async with admin_of(secured, secured["mallory"]) as mallory:
            with pytest.raises(RaftkaError) as created:
                await mallory.create_topic("mallory-topic", 1, 1)
            assert created.value.code_name in {
                "TOPIC_AUTHORIZATION_FAILED",
                "CLUSTER_AUTHORIZATION_FAILED",
            }
            with pytest.raises(RaftkaError) as deleted:
                await mallory.delete_topics(OTHER)
            assert deleted.value.code_name == "TOPIC_AUTHORIZATION_FAILED"
            # Mallory may describe nothing but the topic she may write.
            assert sorted(await mallory.list_topics()) == [ALLOWED]
        assert await topic_names(secured) == before
        assert {ALLOWED, OTHER, REPLICATED} <= set(before)

    asyncio.run(main())


# ---- the metadata plane: Raft ------------------------------------------------------------


def forged_raft(kind: str, term: int) -> rpb.RaftMessage:
    """A message only a leader sends, from a term above the current one."""
    topic = mpb.MetadataBatch(
        records=[mpb.MetadataRecord(topic=mpb.TopicRecord(name="forged", topic_id="A" * 22))]
    ).SerializeToString()
    if kind == "timeout_now":
        return rpb.RaftMessage(term=term, timeout_now=rpb.TimeoutNow())
    data = topic if kind == "append_entries_with_a_topic_record" else b"\xff\xff\xff\xff"
    return rpb.RaftMessage(
        term=term,
        append_entries=rpb.AppendEntries(
            prev_index=0,
            prev_term=0,
            leader_commit=1_000_000,
            entries=[rpb.RaftEntry(index=1, term=term, data=data)],
        ),
    )


@pytest.mark.parametrize(
    "kind",
    [
        "append_entries_with_a_topic_record",
        "append_entries_with_an_undecodable_entry",
        "timeout_now",
    ],
)
def test_forged_raft_messages_are_refused(secured: Secured, kind: str) -> None:
    """In the leader's name, to every voter (a follower would take a higher-term
    AppendEntries; TimeoutNow would make it campaign and move the leadership)."""

    async def main() -> None:
        before = await quorum_state(secured)
        topics = await topic_names(secured)
        for node_id in secured.cluster.nodes:
            envelope = rpb.RaftEnvelope(
                cluster_id=secured.cluster.cluster_id,
                from_node=before.leader,
                to_node=node_id,
                messages=[forged_raft(kind, before.term + 1)],
            )
            async with controller_channel(secured, node_id, secured["mallory"]) as channel:
                stub = rpb_grpc.RaftServiceStub(channel)
                await refused(stub.Deliver(envelope, timeout=RPC_TIMEOUT_S))
        assert await quorum_state(secured) == before
        assert await topic_names(secured) == topics
        assert "forged" not in topics

    asyncio.run(main())


def test_a_node_without_cluster_action_cannot_vote_or_replicate(secured: Secured) -> None:
    """``User:node-99`` looks like a node but is not a super user."""

    async def main() -> None:
        before = await quorum_state(secured)
        for node_id in secured.cluster.nodes:
            vote = rpb.RaftMessage(
                term=before.term + 1,
                request_vote=rpb.RequestVote(
                    last_index=1_000_000, last_term=before.term + 1, transfer=True
                ),
            )
            envelope = rpb.RaftEnvelope(
                cluster_id=secured.cluster.cluster_id,
                from_node=99,
                to_node=node_id,
                messages=[vote],
            )
            async with controller_channel(secured, node_id, secured["node-99"]) as channel:
                await refused(rpb_grpc.RaftServiceStub(channel).Deliver(envelope, timeout=10))
            # Positive control: a super user gets past the check (an empty envelope is
            # harmless: it carries no message).
            empty = rpb.RaftEnvelope(
                cluster_id=secured.cluster.cluster_id, from_node=99, to_node=node_id
            )
            async with controller_channel(secured, node_id, secured.admin) as channel:
                await rpb_grpc.RaftServiceStub(channel).Deliver(empty, timeout=10)
        assert await quorum_state(secured) == before

        # Replicate: a follower fetch in a real follower's name, from its leader.
        _, partition = await partition_state(secured, REPLICATED)
        follower = next(b for b in partition.replicas if b != partition.leader)
        epoch = (await brokers(secured))[follower].broker_epoch
        async with broker_stub(secured, partition.leader, secured["node-99"]) as stub:
            await refused(
                stub.Fetch(fetch_request(REPLICATED, 0, replica=follower, epoch=epoch), timeout=10)
            )

    asyncio.run(main())


# ---- the metadata plane: broker lifecycle ------------------------------------------------

ATTACKERS = ["mallory", "fake-broker"]


@pytest.mark.parametrize("attacker", ATTACKERS)
def test_a_spoofed_heartbeat_cannot_take_a_broker_out_of_service(
    secured: Secured, attacker: str
) -> None:
    async def main() -> None:
        before = await brokers(secured)
        victim = min(before)
        for wants in ({"want_shut_down": True}, {"want_fence": True}):
            request = pb.BrokerHeartbeatRequest(
                broker_id=victim,
                broker_epoch=before[victim].broker_epoch,  # public: DescribeCluster shows it
                current_metadata_index=1 << 40,
            )
            for flag, value in wants.items():
                setattr(request, flag, value)
            await on_every_controller(secured, secured[attacker], "BrokerHeartbeat", request)
        after = await brokers(secured)
        assert after[victim] == before[victim]
        assert not after[victim].fenced and not after[victim].in_controlled_shutdown

    asyncio.run(main())


@pytest.mark.parametrize("attacker", ATTACKERS)
def test_register_broker_for_a_fake_or_a_real_id_is_refused(
    secured: Secured, attacker: str
) -> None:
    """A fake id would be handed to clients (who lost records to it); a real id would
    hijack the broker's endpoint."""

    async def main() -> None:
        before = await brokers(secured)
        real = min(before)
        for broker_id in (42, real):
            request = pb.RegisterBrokerRequest(
                broker_id=broker_id,
                cluster_id=secured.cluster.cluster_id,
                incarnation_id=f"{attacker}-{broker_id}",
                listeners=[cpb.Endpoint(name="CLIENT", host="127.0.0.1", port=1)],
                rack="evil",
                previous_broker_epoch=-1,
            )
            await on_every_controller(secured, secured[attacker], "RegisterBroker", request)
        after = await brokers(secured)
        assert 42 not in after
        assert after == before
        # Clients are still sent to the real endpoint only.
        async with broker_stub(secured, real, secured.admin) as stub:
            meta = await stub.Metadata(bpb.MetadataRequest(topics=[ALLOWED]), timeout=10)
        assert {b.broker_id for b in meta.brokers} == set(secured.cluster.brokers)
        assert all(b.port != 1 for b in meta.brokers)

    asyncio.run(main())


@pytest.mark.parametrize("attacker", ATTACKERS)
def test_alter_partition_cannot_shrink_an_isr(secured: Secured, attacker: str) -> None:
    async def main() -> None:
        topic_id, before = await partition_state(secured, REPLICATED)
        assert len(before.isr) == 3
        leader_epoch = (await brokers(secured))[before.leader].broker_epoch
        request = pb.AlterPartitionRequest(
            broker_id=before.leader,
            broker_epoch=leader_epoch,
            topics=[
                pb.AlterPartitionTopic(
                    topic_id=topic_id,
                    partitions=[
                        pb.AlterPartitionData(
                            partition_index=0,
                            leader_epoch=before.leader_epoch,
                            partition_epoch=before.partition_epoch,
                            new_isr_with_epochs=[
                                pb.BrokerEpochPair(broker_id=before.leader, broker_epoch=-1)
                            ],
                        )
                    ],
                )
            ],
        )
        await on_every_controller(secured, secured[attacker], "AlterPartition", request)
        _, after = await partition_state(secured, REPLICATED)
        assert after == before

    asyncio.run(main())


@pytest.mark.parametrize("attacker", ATTACKERS)
def test_allocate_producer_ids_is_for_nodes_only(secured: Secured, attacker: str) -> None:
    async def main() -> None:
        states = await brokers(secured)
        broker_id = min(states)
        request = pb.AllocateProducerIdsRequest(
            broker_id=broker_id, broker_epoch=states[broker_id].broker_epoch
        )
        await on_every_controller(secured, secured[attacker], "AllocateProducerIds", request)
        # Positive control: a super user reaches the handler (and gets a block).
        async with admin_of(secured) as a:
            leader = (await a.describe_quorum()).leader_id
        async with controller_channel(secured, leader, secured.admin) as channel:
            stub = pb_grpc.ControllerServiceStub(channel)
            block = await stub.AllocateProducerIds(request, timeout=RPC_TIMEOUT_S)
        assert block.count > 0

    asyncio.run(main())


# ---- the data plane ------------------------------------------------------------------------


def test_a_client_may_produce_only_to_the_topic_its_acls_allow(secured: Secured) -> None:
    async def main() -> None:
        async with AsyncProducer(
            bootstrap_servers=secured.cluster.bootstrap_servers,
            **client_settings(secured["alice"]),
        ) as producer:
            await (await producer.send(ALLOWED, b"alice-may"))
            with pytest.raises(TopicAuthorizationFailedError):
                await (await producer.send(OTHER, b"alice-may-not"))
        _, partition = await partition_state(secured, OTHER)
        assert await high_watermark(secured, partition.leader, OTHER) == 0

    asyncio.run(main())


def test_a_consumer_without_read_on_its_group_cannot_join(secured: Secured) -> None:
    async def main() -> None:
        settings = {
            "bootstrap_servers": secured.cluster.bootstrap_servers,
            "auto_offset_reset": "earliest",
            **client_settings(secured["carol"]),
        }
        async with AsyncProducer(
            bootstrap_servers=secured.cluster.bootstrap_servers, **client_settings(secured.admin)
        ) as producer:
            await (await producer.send(ALLOWED, b"for-carol"))

        async def poll_forever(consumer: AsyncConsumer) -> None:
            while True:
                await consumer.poll(timeout_ms=200)

        async with AsyncConsumer(group_id=GROUP_DENIED, **settings) as denied:
            denied.subscribe([ALLOWED])
            # The client reports the coordinator's per-group code (a PartitionError).
            with pytest.raises(RaftkaError) as raised:
                await asyncio.wait_for(poll_forever(denied), 20)
            assert raised.value.code_name == "GROUP_AUTHORIZATION_FAILED", raised.value
        async with admin_of(secured) as a:
            assert [g.group_id for g in await a.list_groups()].count(GROUP_DENIED) == 0

        # Positive control: the group she may read.
        async with AsyncConsumer(group_id=GROUP_OK, **settings) as allowed:
            allowed.subscribe([ALLOWED])
            got: list[bytes] = []

            async def read_hers() -> bool | None:
                got.extend(r.value or b"" for r in await allowed.poll(timeout_ms=200))
                return True if b"for-carol" in got else None

            await eventually(
                read_hers, timeout_s=40, what="carol reads through the group she may read"
            )

    asyncio.run(main())


def batch_of(
    producer_id: int, epoch: int, sequence: int, value: bytes, *, transactional: bool = False
) -> bytes:
    return bytes(
        build_batch(
            [(0, None, value, ())],
            producer_id=producer_id,
            producer_epoch=epoch,
            base_sequence=sequence,
            transactional=transactional,
        )
    )


def test_another_client_cannot_fence_an_idempotent_producer(secured: Secured) -> None:
    """Alice produces idempotently; mallory (WRITE on the same topic) sends batches with
    alice's producer id, a higher epoch or her next sequence, plain or transactional (inside
    a transaction of her own): refused, and alice goes on."""

    async def main() -> None:
        _, partition = await partition_state(secured, ALLOWED)
        start = await high_watermark(secured, partition.leader, ALLOWED)
        first = [b"alice-%d" % i for i in range(5)]
        second = [b"alice-%d" % i for i in range(5, 10)]
        async with AsyncProducer(
            bootstrap_servers=secured.cluster.bootstrap_servers,
            enable_idempotence=True,
            **client_settings(secured["alice"]),
        ) as alice:
            await asyncio.gather(*[await alice.send(ALLOWED, v, partition=0) for v in first])
            # Producer ids are no secret (they are in every stored batch, and handed out in
            # order): read alice's from the log.
            async with broker_stub(secured, partition.leader, secured.admin) as stub:
                fetched = await stub.Fetch(fetch_request(ALLOWED, start), timeout=10)
            header = BatchHeader.parse(fetched.results[0].batches)
            pid, epoch = header.producer_id, header.producer_epoch
            assert pid >= 0
            forged = {
                "a higher epoch": batch_of(pid, epoch + 1, 0, b"forged"),
                "her next sequence": batch_of(pid, epoch, len(first), b"forged"),
            }
            async with broker_stub(secured, partition.leader, secured["mallory"]) as stub:
                for what, payload in forged.items():
                    response = await stub.Produce(produce_batches(ALLOWED, payload), timeout=10)
                    code = response.results[0].error_code
                    assert code == cpb.INVALID_PRODUCER_ID_MAPPING, (what, cpb.ErrorCode.Name(code))
                plain = bpb.ProduceRequest(
                    acks=-1,
                    timeout_ms=5000,
                    topics=[
                        bpb.TopicProduceData(
                            topic=ALLOWED,
                            partitions=[
                                bpb.PartitionProduceData(
                                    partition=0,
                                    records=[bpb.Record(value=b"forged")],
                                    producer_id=pid,
                                    producer_epoch=epoch + 1,
                                    base_sequence=0,
                                )
                            ],
                        )
                    ],
                )
                response = await stub.Produce(plain, timeout=10)
                assert response.results[0].error_code == cpb.INVALID_PRODUCER_ID_MAPPING
                # Positive control: mallory may write the topic without a producer id.
                response = await stub.Produce(
                    produce_batches(ALLOWED, bytes(build_batch([(0, None, b"mallory", ())]))),
                    timeout=10,
                )
                assert response.results[0].error_code == cpb.NONE
                # Transactional batches are authorized through their transactional id (and
                # the coordinator's check that the producer id is that id's), not bound to
                # their first writer: mallory opens a transaction of her own with the
                # partition in it, and sends alice's producer id in it.
                async with AsyncProducer(
                    bootstrap_servers=secured.cluster.bootstrap_servers,
                    transactional_id=MALLORY_TXN,
                    **client_settings(secured["mallory"]),
                ) as own:
                    await own.init_transactions()
                    own.begin_transaction()
                    await (await own.send(ALLOWED, b"mallory-in-txn", partition=0))
                    payload = batch_of(pid, epoch + 1, 0, b"forged", transactional=True)
                    for txn_id, expected in (
                        (MALLORY_TXN, cpb.INVALID_PRODUCER_ID_MAPPING),
                        ("", cpb.INVALID_TXN_STATE),
                    ):
                        request = produce_batches(ALLOWED, payload, transactional_id=txn_id)
                        response = await stub.Produce(request, timeout=10)
                        code = response.results[0].error_code
                        assert code == expected, (txn_id, cpb.ErrorCode.Name(code))
                    await own.abort_transaction()
            # Alice is neither fenced nor out of sequence.
            await asyncio.gather(*[await alice.send(ALLOWED, v, partition=0) for v in second])
        end = await high_watermark(secured, partition.leader, ALLOWED)
        values = await read_all(secured, ALLOWED, end)
        assert b"forged" not in values
        assert [v for v in values if v.startswith(b"alice-")][-10:] == first + second

    asyncio.run(main())


def produce_batches(topic: str, payload: bytes, transactional_id: str = "") -> bpb.ProduceRequest:
    return bpb.ProduceRequest(
        acks=-1,
        timeout_ms=5000,
        transactional_id=transactional_id,
        topics=[
            bpb.TopicProduceData(
                topic=topic, partitions=[bpb.PartitionProduceData(partition=0, batches=payload)]
            )
        ],
    )


def test_a_fake_follower_cannot_advance_the_high_watermark(secured: Secured) -> None:
    """A follower Fetch in a real follower's name and broker epoch (public), claiming more
    than the followers hold: refused. The high watermark is what the real followers
    replicated, and an acks=all write survives the leader's death. Runs last: it kills the
    leader (restarted at the end)."""

    async def main() -> None:
        _, partition = await partition_state(secured, REPLICATED)
        leader = partition.leader
        values = [b"kept-%d" % i for i in range(20)]
        request = bpb.ProduceRequest(
            acks=-1,
            timeout_ms=5000,
            topics=[
                bpb.TopicProduceData(
                    topic=REPLICATED,
                    partitions=[
                        bpb.PartitionProduceData(
                            partition=0, records=[bpb.Record(value=v) for v in values]
                        )
                    ],
                )
            ],
        )
        async with broker_stub(secured, leader, secured.admin) as stub:
            response = await stub.Produce(request, timeout=10)
        assert response.results[0].error_code == cpb.NONE, response.results[0].error_message
        log_end = response.results[0].base_offset + len(values)
        states = await brokers(secured)
        followers = [b for b in partition.replicas if b != leader]
        async with broker_stub(secured, leader, secured["mallory"]) as stub:
            for follower in followers:
                for offset in (log_end, log_end + 1000):
                    fake = fetch_request(
                        REPLICATED, offset, replica=follower, epoch=states[follower].broker_epoch
                    )
                    await refused(stub.Fetch(fake, timeout=10))
        assert await high_watermark(secured, leader, REPLICATED) == log_end

        secured.cluster.kill(leader)
        try:

            async def new_leader() -> int | None:
                _, now = await partition_state(secured, REPLICATED)
                return now.leader if now.leader not in (-1, leader) else None

            survivor = await eventually(new_leader, what="a new leader of the partition")
            assert survivor in followers

            async def served() -> int | None:
                result = await latest_offset(secured, survivor, REPLICATED)
                ready = result.error_code == cpb.NONE and result.offset >= log_end
                return int(result.offset) if ready else None  # else still taking over

            assert await eventually(served, what="the new leader serves the log") == log_end
            assert (await read_all(secured, REPLICATED, log_end))[-len(values) :] == values
        finally:
            secured.cluster.start(leader)
            await wait_unfenced(secured.cluster, [leader])

    asyncio.run(main())
