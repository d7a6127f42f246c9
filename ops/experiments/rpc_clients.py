"""The workload's reader as plain BrokerService RPCs (Fetch): each poll is one fetch from a
given offset, recorded as it was answered (the sender is the client library's producer:
``producer_sender``).

Leaders come from the brokers' Metadata (``MetadataCache``), refreshed after any error that
says the leader moved or the broker is gone.
"""

from __future__ import annotations

import contextlib

import grpc

from raftka.client.connections import BrokerConnections
from raftka.client.errors import REFRESH_METADATA
from raftka.client.metadata_cache import MetadataCache
from raftka.common.errors import RaftkaError
from raftka.common.records.decoder import iter_records
from raftka.common.rpc.retry import Deadline
from raftka.ops.experiments.workload import PollResult
from raftka.v1 import broker_pb2 as pb
from raftka.v1.common_pb2 import ErrorCode

RECONNECT_OPTIONS: list[tuple[str, int | str]] = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
"""A restarted broker is reachable again within a second (gRPC's default backoff grows to
two minutes, which would show up as unavailability that is the client's, not the cluster's)."""


class RpcClients:
    """The connections and metadata the sender and reader share."""

    def __init__(self, bootstrap: list[str], topic: str, *, request_timeout_s: float) -> None:
        self.topic = topic
        self.request_timeout_s = request_timeout_s
        self.connections = BrokerConnections(RECONNECT_OPTIONS)
        self.metadata = MetadataCache(
            bootstrap, self.connections, request_timeout_s=min(1.0, request_timeout_s)
        )

    async def leader(self, partition: int, timeout_s: float) -> str:
        address, _epoch = await self.metadata.leader(self.topic, partition, Deadline(timeout_s))
        return address

    async def refresh(self) -> None:
        with contextlib.suppress(RaftkaError):  # the next call tries again
            await self.metadata.refresh([self.topic])

    async def close(self) -> None:
        await self.connections.close()


class RpcReader:
    def __init__(self, clients: RpcClients, *, max_wait_ms: int = 500) -> None:
        self._c = clients
        self.max_wait_ms = max_wait_ms

    async def _fetch(
        self, address: str, partition: int, offset: int, max_wait_ms: int
    ) -> pb.FetchPartitionResult:
        request = pb.FetchRequest(
            max_wait_ms=max_wait_ms,
            min_bytes=1,
            max_bytes=4 * 1024 * 1024,
            topics=[
                pb.FetchTopic(
                    topic=self._c.topic,
                    partitions=[
                        pb.FetchPartition(
                            partition=partition, fetch_offset=offset, current_leader_epoch=-1
                        )
                    ],
                )
            ],
        )
        response = await self._c.connections.stub(address).Fetch(
            request, timeout=max_wait_ms / 1000 + self._c.request_timeout_s
        )
        (result,) = response.results
        return result  # type: ignore[no-any-return]

    async def poll(self, partition: int, offset: int) -> PollResult:
        c = self._c
        try:
            address = await c.leader(partition, c.request_timeout_s)
            result = await self._fetch(address, partition, offset, self.max_wait_ms)
        except RaftkaError as e:
            return PollResult(error=e.code_name)
        except grpc.aio.AioRpcError as e:
            await c.refresh()
            return PollResult(error=f"rpc {e.code().name}")
        if result.error_code == ErrorCode.OFFSET_OUT_OF_RANGE:
            return PollResult(error="OFFSET_OUT_OF_RANGE", reset_to=int(result.high_watermark))
        if result.error_code != ErrorCode.NONE:
            if result.error_code in REFRESH_METADATA:
                await c.refresh()
            return PollResult(error=ErrorCode.Name(result.error_code))
        return PollResult(records=_decoded(result.batches, offset))

    async def read_all(self, partition: int) -> list[tuple[int, str]]:
        """From offset 0 to the high watermark the leader reports at the start (after healing,
        with the ISR full, that is the log end). Raises RaftkaError when the leader does not
        answer; the caller decides whether to try again."""
        c = self._c
        await c.refresh()
        address = await c.leader(partition, c.request_timeout_s)
        records: list[tuple[int, str]] = []
        position, end = 0, None
        while end is None or position < end:
            try:
                result = await self._fetch(address, partition, position, 0)
            except grpc.aio.AioRpcError as e:
                raise RaftkaError(f"fetch from {address}: {e.code().name}") from None
            if result.error_code != ErrorCode.NONE:
                raise RaftkaError(
                    f"fetch from {address}: {ErrorCode.Name(result.error_code)} "
                    f"{result.error_message}"
                )
            if end is None:
                end = int(result.high_watermark)
            batch = _decoded(result.batches, position)
            if not batch:
                break
            records += [r for r in batch if r[0] < end]
            position = batch[-1][0] + 1
        return records

    async def close(self) -> None:
        await self._c.close()


def _decoded(batches: bytes, from_offset: int) -> tuple[tuple[int, str], ...]:
    """(offset, value) of every record at or after ``from_offset`` (a fetch returns whole
    batches, which may start before it)."""
    return tuple(
        (r.offset, (r.value or b"").decode("utf-8", errors="replace"))
        for r in iter_records(batches)
        if r.offset >= from_offset
    )
