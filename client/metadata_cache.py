"""The client's picture of the cluster: brokers, and each partition's leader, from the brokers'
Metadata RPC.

Refreshed when a request fails with a stale-metadata error (the caller says so), when a topic
is first used, and every ``max_age_s`` (Kafka's metadata.max.age.ms). Concurrent refreshes
coalesce into one request. Bootstrap addresses are tried until one answers; after that every
known broker is a candidate, so the cluster can outlive the bootstrap list.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import grpc
import structlog

from raftka.client.connections import BrokerConnections
from raftka.common.errors import RaftkaError, RequestTimedOutError, UnknownTopicOrPartitionError
from raftka.common.rpc.retry import Deadline, RetryPolicy
from raftka.common.rpc.status import error_from_code, error_from_rpc
from raftka.common.security_errors import AuthenticationFailedError
from raftka.v1 import broker_pb2 as pb
from raftka.v1.common_pb2 import ErrorCode

log = structlog.get_logger(__name__)

UNREACHABLE_FOR_S = 10.0
"""How long a broker that did not answer is asked for metadata only after the others."""


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    topic: str
    partition: int
    leader_id: int
    """-1 while the partition has no leader."""
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TopicInfo:
    name: str
    topic_id: str
    partitions: tuple[PartitionInfo, ...]


class MetadataCache:
    def __init__(
        self,
        bootstrap: Sequence[str],
        connections: BrokerConnections,
        *,
        request_timeout_s: float = 5.0,
        max_age_s: float = 300.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        if not bootstrap:
            raise RaftkaError(
                "no bootstrap server given: pass bootstrap_servers=['host:port'] "
                "(a broker address; `raftka up` prints them)"
            )
        self.bootstrap = list(bootstrap)
        self._connections = connections
        self._request_timeout_s = request_timeout_s
        self.max_age_s = max_age_s
        self._retry = retry or RetryPolicy()
        self.brokers: dict[int, str] = {}
        self.topics: dict[str, TopicInfo] = {}
        self.refused: dict[str, RaftkaError] = {}
        """Topics the brokers answered with an error other than "unknown" (the caller may not
        describe it: TOPIC_AUTHORIZATION_FAILED), with that error: :meth:`topic` raises it."""
        self.cluster_id = ""
        self._wanted: set[str] = set()
        self._inflight: asyncio.Task[None] | None = None
        self._updated_at = float("-inf")
        self.fresh = False
        """True from a refresh until ``max_age_s`` after it (a timer clears it): the
        producer's send path reads it for every record, so it reads no clock."""
        self._expiry: asyncio.TimerHandle | None = None
        self._rotation = 0
        self._unreachable: dict[str, float] = {}

    # ------------------------------------------------------------------ views

    def partition(self, topic: str, partition: int) -> PartitionInfo | None:
        info = self.topics.get(topic)
        if info is None or not 0 <= partition < len(info.partitions):
            return None
        return info.partitions[partition]

    def leader_address(self, topic: str, partition: int) -> str | None:
        p = self.partition(topic, partition)
        if p is None or p.leader_id < 0:
            return None
        return self.brokers.get(p.leader_id)

    def leader_epoch(self, topic: str, partition: int) -> int:
        """The partition's leader epoch as last seen (-1 if unknown)."""
        p = self.partition(topic, partition)
        return p.leader_epoch if p is not None else -1

    def partition_count(self, topic: str) -> int | None:
        info = self.topics.get(topic)
        return len(info.partitions) if info is not None else None

    def note_unreachable(self, address: str) -> None:
        """A request to ``address`` got no answer: ask the other brokers for metadata first for
        a while (a frozen broker would hold every refresh for a whole request timeout)."""
        self._unreachable[address] = time.monotonic() + UNREACHABLE_FOR_S

    def fresh_topic(self, name: str) -> TopicInfo | None:
        """The topic's metadata if known and fresh (the send path's fast case), else None."""
        if self.stale or name not in self._wanted:
            return None
        return self.topics.get(name)

    @property
    def stale(self) -> bool:
        return time.monotonic() - self._updated_at >= self.max_age_s

    # ------------------------------------------------------------------ refreshing

    async def refresh(self, topics: Iterable[str] = ()) -> None:
        """Fetch fresh metadata for every topic of interest (``topics`` are added to them).
        A refresh already in flight is joined, and repeated if it missed a new topic."""
        new = set(topics) - self._wanted
        self._wanted |= new
        inflight = self._inflight
        if inflight is not None and not inflight.done():
            await asyncio.shield(inflight)
            if not new:
                return
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.ensure_future(self._refresh_once())
        await asyncio.shield(self._inflight)

    async def _refresh_once(self) -> None:
        response = await self._fetch(pb.MetadataRequest(topics=sorted(self._wanted)))
        self.cluster_id = response.cluster_id
        brokers = {b.broker_id: f"{b.host}:{b.port}" for b in response.brokers}
        if brokers:
            self.brokers = brokers
        for t in response.topics:
            self.refused.pop(t.name, None)
            if t.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
                self.topics.pop(t.name, None)
                continue
            if t.error_code != ErrorCode.NONE:
                # Not a topic without partitions: a refusal, which no retry changes (until an
                # ACL is granted, which the next refresh sees).
                self.topics.pop(t.name, None)
                hint = (
                    ": this client's principal may not DESCRIBE it (grant it an ACL, e.g. "
                    f"`raftka acls add --allow-principal User:<name> --operation WRITE --topic "
                    f"{t.name}`)"
                    if t.error_code == ErrorCode.TOPIC_AUTHORIZATION_FAILED
                    else ""
                )
                self.refused[t.name] = error_from_code(
                    t.error_code, f"the brokers refused metadata for topic {t.name!r}{hint}"
                )
                continue
            known = self.topics.get(t.name)
            same_topic = known is not None and known.topic_id == t.topic_id
            partitions: list[PartitionInfo] = []
            for p in sorted(t.partitions, key=lambda p: p.partition):
                info = PartitionInfo(
                    t.name,
                    p.partition,
                    p.leader_id,
                    p.leader_epoch,
                    tuple(p.replicas),
                    tuple(p.isr),
                )
                if same_topic and known is not None and p.partition < len(known.partitions):
                    old = known.partitions[p.partition]
                    if old.leader_epoch > info.leader_epoch:
                        # A broker behind on metadata (or cut off from the controllers) still
                        # names an older leader: keep the newer view (Kafka's KIP-320).
                        info = old
                partitions.append(info)
            self.topics[t.name] = TopicInfo(t.name, t.topic_id, tuple(partitions))
        self._updated_at = time.monotonic()
        self.fresh = True
        if self._expiry is not None:
            self._expiry.cancel()
        self._expiry = asyncio.get_running_loop().call_later(self.max_age_s, self._expire)

    def _expire(self) -> None:
        self.fresh = False
        self._expiry = None

    async def _fetch(self, request: pb.MetadataRequest) -> pb.MetadataResponse:
        # Start with a different broker each time, so one broker with a stale view (cut off
        # from the controllers, say) cannot be the only one the client hears.
        known = list(self.brokers.values())
        if known:
            self._rotation = (self._rotation + 1) % len(known)
            known = known[self._rotation :] + known[: self._rotation]
        now = time.monotonic()
        candidates = sorted(
            dict.fromkeys([*known, *self.bootstrap]),
            key=lambda a: self._unreachable.get(a, 0.0) > now,  # stable: just moves them last
        )
        errors: list[str] = []
        for address in candidates:
            try:
                response: pb.MetadataResponse = await self._connections.stub(address).Metadata(
                    request, timeout=self._request_timeout_s
                )
                return response
            except grpc.aio.AioRpcError as e:
                error = error_from_rpc(e, address)
                if isinstance(error, AuthenticationFailedError):
                    # A refused token or certificate is not a broker being down: say so now,
                    # as Kafka's SaslAuthenticationException does, rather than after max.block.ms.
                    raise error from None
                self.note_unreachable(address)
                errors.append(f"{address} ({error.message})")
        raise RequestTimedOutError(
            f"cannot reach any bootstrap server or broker: {'; '.join(errors)}. "
            "Is the cluster running? Try `raftka up`."
        )

    async def topic(self, name: str, deadline: Deadline) -> TopicInfo:
        """The topic's metadata, refreshing until it is known or ``deadline`` passes; a topic
        the brokers refuse to describe raises their error at once (e.g.
        TopicAuthorizationFailedError)."""
        attempt = 0
        while True:
            info = self.topics.get(name)
            if info is not None and name in self._wanted and not self.stale:
                return info
            try:
                await self.refresh([name])
            except AuthenticationFailedError:
                raise  # retrying with the same credentials cannot help
            except RaftkaError:
                if deadline.expired():
                    raise
            info = self.topics.get(name)
            if info is not None:
                return info
            if name in self.refused:
                raise self.refused[name]
            attempt += 1
            if deadline.expired():
                raise UnknownTopicOrPartitionError(
                    f"topic {name!r} does not exist (the brokers do not know it): create it "
                    f"first, e.g. `raftka topics create {name}`"
                )
            await asyncio.sleep(min(self._retry.backoff(attempt), deadline.remaining()))

    async def leader(self, topic: str, partition: int, deadline: Deadline) -> tuple[str, int]:
        """(address, leader epoch) of the partition's leader, refreshing while it has none."""
        attempt = 0
        while True:
            p = self.partition(topic, partition)
            address = self.leader_address(topic, partition)
            if p is not None and address is not None:
                return address, p.leader_epoch
            if deadline.expired():
                if p is None:
                    raise UnknownTopicOrPartitionError(
                        f"{topic}-{partition} does not exist (the brokers do not know it)"
                    )
                raise RequestTimedOutError(
                    f"{topic}-{partition} has no leader (all its in-sync replicas are down?)"
                )
            if attempt:
                await asyncio.sleep(min(self._retry.backoff(attempt), deadline.remaining()))
            attempt += 1
            try:
                await self.refresh([topic])
            except RaftkaError:
                if deadline.expired():
                    raise

    async def run_periodic_refresh(self) -> None:
        """Refresh every ``max_age_s`` (a background task of the client that owns the cache)."""
        while True:
            await asyncio.sleep(self.max_age_s)
            try:
                await self.refresh()
            except RaftkaError as e:
                log.warning("metadata_refresh_failed", error=e.message)
