"""Sends Raft messages to peers over gRPC and receives theirs.

One sender task per peer keeps that peer's messages in order and ships whatever has queued
up as one Deliver call, so a leader's pipelined AppendEntries travel many to a call. Raft
tolerates lost messages, so a failed call drops its batch (and anything queued behind it,
which would be stale by the time the peer is back) instead of retrying.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from contextlib import suppress

import grpc
import structlog

from raftka.common.faults import FAULTS, Direction, FaultPath
from raftka.common.ids import NodeId
from raftka.common.rpc.channels import open_channel
from raftka.common.tasks import cancel_and_wait
from raftka.controller.quorum.codec import InvalidRaftMessage, message_from_pb, message_to_pb
from raftka.controller.raft.messages import Message
from raftka.v1 import raft_pb2 as pb
from raftka.v1.raft_pb2_grpc import RaftServiceServicer, RaftServiceStub

log = structlog.get_logger(__name__)

MAX_MESSAGES_PER_CALL = 512
MAX_QUEUED_MESSAGES = 8192
MAX_MESSAGES_PER_ENVELOPE = 4096
"""What a receiver accepts in one Deliver call (senders put at most MAX_MESSAGES_PER_CALL)."""
CALL_TIMEOUT_S = 5.0


class PeerSender:
    def __init__(self, cluster_id: str, src: NodeId, dst: NodeId, address: str) -> None:
        self.cluster_id = cluster_id
        self.src = src
        self.dst = dst
        self.address = address
        self.queue: asyncio.Queue[Message] = asyncio.Queue(MAX_QUEUED_MESSAGES)
        self.channel = open_channel(address)
        self.stub = RaftServiceStub(self.channel)
        self.failing = False
        self.task: asyncio.Task[None] | None = None

    def enqueue(self, msg: Message) -> None:
        with suppress(asyncio.QueueFull):
            self.queue.put_nowait(msg)

    async def run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < MAX_MESSAGES_PER_CALL and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            if not await FAULTS.admit(FaultPath.RAFT, self.dst, Direction.OUTBOUND):
                continue  # Raft tolerates lost messages
            envelope = pb.RaftEnvelope(
                cluster_id=self.cluster_id,
                from_node=self.src,
                to_node=self.dst,
                messages=[message_to_pb(m) for m in batch],
            )
            try:
                await self.stub.Deliver(envelope, timeout=CALL_TIMEOUT_S)
                if self.failing:
                    self.failing = False
                    log.info("raft_peer_reachable", peer=self.dst, address=self.address)
            except grpc.aio.AioRpcError as e:
                if not self.failing:
                    self.failing = True
                    log.warning(
                        "raft_peer_unreachable",
                        peer=self.dst,
                        address=self.address,
                        code=e.code().name,
                        details=e.details(),
                    )
                while not self.queue.empty():
                    self.queue.get_nowait()

    async def close(self) -> None:
        await cancel_and_wait([self.task])
        await self.channel.close()


class RaftTransport:
    def __init__(self, cluster_id: str, self_id: NodeId, peers: Mapping[NodeId, str]) -> None:
        self._senders = {
            node: PeerSender(cluster_id, self_id, node, address)
            for node, address in peers.items()
            if node != self_id
        }

    def start(self) -> None:
        for sender in self._senders.values():
            sender.task = asyncio.create_task(sender.run(), name=f"raft-send-{sender.dst}")

    def send(self, messages: list[Message]) -> None:
        for msg in messages:
            sender = self._senders.get(msg.dst)
            if sender is not None:
                sender.enqueue(msg)

    async def close(self) -> None:
        for sender in self._senders.values():
            await sender.close()


class RaftServicer(RaftServiceServicer):
    """Receives peers' messages and hands them to the local Raft node."""

    def __init__(
        self, cluster_id: str, self_id: NodeId, deliver: Callable[[Message], None]
    ) -> None:
        self._cluster_id = cluster_id
        self._self_id = self_id
        self._deliver = deliver

    async def Deliver(
        self,
        request: pb.RaftEnvelope,
        context: grpc.aio.ServicerContext[pb.RaftEnvelope, pb.DeliverAck],
    ) -> pb.DeliverAck:
        if request.cluster_id != self._cluster_id:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"cluster id {request.cluster_id!r} is not this node's ({self._cluster_id!r}): "
                "check controller.voters and the data directories",
            )
        if request.to_node != self._self_id:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"message for node {request.to_node} reached node {self._self_id}: "
                "controller.voters differs between nodes",
            )
        src = NodeId(request.from_node)
        if not await FAULTS.admit(FaultPath.RAFT, src, Direction.INBOUND):
            return pb.DeliverAck()
        if len(request.messages) > MAX_MESSAGES_PER_ENVELOPE:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"envelope from node {src} holds {len(request.messages)} messages, more than "
                f"the {MAX_MESSAGES_PER_ENVELOPE} a receiver takes: none was delivered",
            )
        # Decode and check every message before delivering any: a malformed one means the
        # sender is broken, and half an envelope must not reach the core.
        messages: list[Message] = []
        for i, raw in enumerate(request.messages):
            try:
                msg = message_from_pb(src, self._self_id, raw)
            except InvalidRaftMessage as e:
                log.warning("raft_envelope_refused", peer=src, message=i, reason=str(e))
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"message {i} of the envelope from node {src} is malformed ({e}): none of "
                    f"its {len(request.messages)} messages was delivered; the sender is "
                    "broken or not a Raftka controller of this version",
                )
            if msg is not None:
                messages.append(msg)
        for msg in messages:
            self._deliver(msg)
        return pb.DeliverAck()
