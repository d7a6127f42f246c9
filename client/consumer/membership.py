"""A consumer's membership of its group: KIP-848's ConsumerGroupHeartbeat from the member side.

:class:`GroupMember` joins (member epoch 0, with the subscription), heartbeats every
``heartbeat_interval_ms`` the coordinator asks for, and reconciles every assignment the
coordinator sends, one step at a time: revoked partitions first (``PartitionHandover.revoke``),
then the new ones, then a heartbeat at once reporting what it owns (``owned_partitions``), so
the coordinator can hand released partitions on without waiting a whole interval.

Two epochs: the coordinator's newest answer sets ``epoch``, which heartbeats and offset
requests carry at once (the coordinator refuses any other with STALE_MEMBER_EPOCH, so an
``on_assign`` that reads positions must not wait for an answer still unread behind it).
Reconciling runs in its own task beside the heartbeats, always towards the newest target, and
sets ``assignment_epoch`` once the member holds nothing outside that target (after the
revocations, before the additions): the epoch ``group_metadata()`` reports, so records the
application is handed are never labelled with an epoch in which another member owns their
partition.

Transports (``group_heartbeat_mode``): ``stream`` (default) keeps one ConsumerGroupStream open,
on which the coordinator also pushes a new assignment as soon as it computes it; ``unary``
sends one ConsumerGroupHeartbeat call per heartbeat.

Failures: a call that fails with NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE or no answer makes
it find the coordinator again; COORDINATOR_LOAD_IN_PROGRESS is retried after a backoff.
UNKNOWN_MEMBER_ID / FENCED_MEMBER_EPOCH: every partition is lost (no commit) and the member
rejoins with epoch 0. Other errors (a static instance id in use, a bad assignor or regex, a
full group) are fatal: poll() raises them.

max_poll_interval_ms: if poll() is not called for that long, the member loses its partitions
and leaves (epoch -1); its next poll() rejoins. close() leaves with epoch -1, or -2 for a
static member (``group_instance_id``), whose partitions then wait for it until its session
timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import grpc
import structlog

from raftka.client.consumer.config import ConsumerConfig
from raftka.client.consumer.errors import IllegalStateError
from raftka.client.consumer.rebalance import PartitionHandover
from raftka.client.group_coordinator import (
    REFIND,
    GroupCoordinator,
    by_topic,
    from_topics,
    group_error,
)
from raftka.client.types import TopicPartition
from raftka.common import group_errors
from raftka.common.errors import CoordinatorLoadInProgressError, RaftkaError
from raftka.common.rpc.retry import Deadline, RetryPolicy
from raftka.common.rpc.status import error_from_rpc
from raftka.common.rpc.stream_call import write_request
from raftka.common.tasks import cancel_and_wait
from raftka.v1 import groups_pb2 as gpb
from raftka.v1.common_pb2 import ErrorCode
from raftka.v1.groups_pb2_grpc import GroupServiceStub

log = structlog.get_logger(__name__)

JOIN, LEAVE, STATIC_LEAVE = 0, -1, -2
DEFAULT_HEARTBEAT_S = 5.0
"""Until the coordinator says otherwise (its first answer does)."""

FENCED = (ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.FENCED_MEMBER_EPOCH)
UNRELEASED_RETRY_S = 0.5
"""How often a restarted static member asks again for an instance id its crashed previous
incarnation still holds."""


@dataclass(frozen=True, slots=True)
class Subscription:
    topics: tuple[str, ...] = ()
    pattern: str | None = None

    @classmethod
    def of(cls, topics: Iterable[str], pattern: str | None) -> Subscription:
        """What subscribe() was given, checked: topic names or a pattern that compiles."""
        if isinstance(topics, str):
            topics = [topics]
        names = tuple(dict.fromkeys(topics))
        if pattern is not None and names:
            raise IllegalStateError("subscribe(): give topics or pattern, not both")
        if pattern is None and not names:
            raise IllegalStateError(
                "subscribe(): give the topics to read, or a pattern (use unsubscribe() to stop)"
            )
        for name in names:
            if not isinstance(name, str) or not name:
                raise IllegalStateError(f"subscribe(): {name!r} is not a topic name")
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as e:
                raise group_errors.InvalidRegularExpressionError(
                    f"subscribe(pattern={pattern!r}): not a valid regular expression: {e}"
                ) from None
        return cls(names, pattern)


@dataclass(frozen=True, slots=True)
class ConsumerGroupMetadata:
    """Who a consumer is in its group now (Kafka's ConsumerGroupMetadata)."""

    group_id: str
    member_id: str
    """Generated by the consumer (KIP-1082); empty for a consumer that never subscribed."""
    member_epoch: int
    """-1 outside a membership."""
    group_instance_id: str | None


class GroupMember:
    def __init__(
        self,
        config: ConsumerConfig,
        coordinator: GroupCoordinator,
        handover: PartitionHandover,
        subscription: Subscription,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._coordinator = coordinator
        self._handover = handover
        self.subscription = subscription
        self._clock = clock
        self._retry = RetryPolicy(config.retry_backoff_ms / 1000, 1.0)
        self.member_id = uuid.uuid4().hex
        """Generated here (KIP-1082) and kept across fences and rejoins: a join whose answer
        was lost and is sent again is the same member, never a second one holding partitions
        until its session times out. Only a leave (-1) ends it: the next join takes a new id."""
        self.epoch = JOIN
        """The coordinator's newest epoch for this member (heartbeats and offset requests)."""
        self.assignment_epoch = LEAVE
        """The epoch of the assignment reconciled so far (what the application sees)."""
        self._target: frozenset[TopicPartition] = frozenset()
        self._target_epoch = JOIN
        self._reconciled: tuple[frozenset[TopicPartition], int] | None = None
        self._membership = 0
        """Counts memberships ended (fence, leave): a reconcile of an older one stops."""
        self._reconciler: asyncio.Task[None] | None = None
        self._reconciler_of = 0
        """The membership the reconcile task works for."""
        self.heartbeat_s = DEFAULT_HEARTBEAT_S
        self.fatal: RaftkaError | None = None
        self.left_for_poll_timeout = False
        self._last_poll = clock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._reconciling: asyncio.Lock = asyncio.Lock()
        self.heartbeats_sent = 0
        self._unreleased_since: float | None = None

    # ------------------------------------------------------------------ the consumer's calls

    @property
    def identity(self) -> tuple[str, int]:
        """(member id, epoch) for offset requests; ("", -1) while not a member."""
        if self.member_id and self.epoch > 0:
            return self.member_id, self.epoch
        return "", -1

    @property
    def assigned_identity(self) -> tuple[str, int]:
        """(member id, epoch of the assignment reconciled so far) for the application
        (``group_metadata()``, transactional offset commits); ("", -1) while it holds none."""
        if self.member_id and self.epoch > 0 and self.assignment_epoch > 0:
            return self.member_id, self.assignment_epoch
        return "", -1

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def polled(self) -> None:
        """poll() was called: the member is alive (rejoins if max_poll_interval_ms had expired)."""
        self._last_poll = self._clock()
        if self._closing or self.fatal is not None:
            return
        if self.left_for_poll_timeout:
            log.info("consumer_group_rejoining", group=self._coordinator.group_id)
            self.left_for_poll_timeout = False
        if not self.running:
            self._task = asyncio.ensure_future(self._run())

    def resubscribe(self, subscription: Subscription) -> None:
        self.subscription = subscription
        self._wake.set()

    async def close(self) -> None:
        """Stop heartbeating, give up every partition (committing them if auto-commit is on),
        and leave (-1, or -2 for a static member)."""
        self._closing = True
        await cancel_and_wait([self._task])
        self._end_membership()
        async with self._reconciling:
            await self._handover.revoke(self._handover.owned())
        await cancel_and_wait([self._reconciler])
        if self.member_id and self.epoch > 0:
            static = self._config.group_instance_id is not None
            await self._leave(STATIC_LEAVE if static else LEAVE)

    # ------------------------------------------------------------------ the heartbeat loop

    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            try:
                if self._config.group_heartbeat_mode == "stream":
                    await self._run_stream()
                else:
                    await self._run_unary()
                return  # left (max_poll_interval_ms) or fatal
            except (group_errors.UnknownMemberIdError, group_errors.FencedMemberEpochError) as e:
                await self._fenced(e)  # as a failed call rather than an answer: the same
            except RaftkaError as e:
                self._coordinator.note_failure(e)
                if not isinstance(e, (*REFIND, CoordinatorLoadInProgressError)):
                    self._fail(e)
                    return
                attempt += 1
                log.info(
                    "consumer_group_heartbeat_retry",
                    group=self._coordinator.group_id,
                    error=e.message,
                    attempt=attempt,
                )
                await asyncio.sleep(self._retry.backoff(attempt))

    async def _run_unary(self) -> None:
        timeout = self._coordinator.request_timeout_s
        while True:
            if await self._poll_expired():
                await self._leave(LEAVE)
                return
            request = self._request()
            self.heartbeats_sent += 1
            response = await self._coordinator.call(
                functools.partial(_heartbeat, request=request, timeout_s=timeout),
                Deadline(timeout),
            )
            await self._handle(response)
            if self.fatal is not None:
                return
            if not self._wake.is_set():
                await self._wait(self._interval())

    async def _run_stream(self) -> None:
        address = await self._coordinator.find(Deadline(self._coordinator.request_timeout_s))
        call = self._coordinator.stub(address).ConsumerGroupStream()
        reader = asyncio.ensure_future(self._read(call, address))
        try:
            while True:
                if await self._poll_expired():
                    await self._leave(LEAVE)
                    return
                self._wake.clear()
                self.heartbeats_sent += 1
                try:
                    await write_request(call, self._request())
                except grpc.aio.AioRpcError as e:  # the stream ended: its status says why
                    raise error_from_rpc(e, address) from None
                wake = asyncio.ensure_future(self._wake.wait())
                try:
                    await asyncio.wait(
                        {reader, wake},
                        timeout=self._interval(),
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    wake.cancel()
                if reader.done():
                    reader.result()  # raises the stream's error
                    if self.fatal is not None:
                        return
                    raise group_errors.CoordinatorNotAvailableError(
                        f"the coordinator at {address} closed the heartbeat stream"
                    )
        finally:
            call.cancel()
            await cancel_and_wait([reader])

    async def _read(self, call: object, address: str) -> None:
        try:
            async for response in call:  # type: ignore[attr-defined]
                await self._handle(response)
                if self.fatal is not None:
                    return
        except grpc.aio.AioRpcError as e:
            raise error_from_rpc(e, address) from None

    async def _wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        self._wake.clear()

    def _interval(self) -> float:
        """Until the next heartbeat is due, or the poll interval runs out, if sooner."""
        poll_left = self._last_poll + self._config.max_poll_interval_ms / 1000 - self._clock()
        return max(0.0, min(self.heartbeat_s, poll_left + 0.001))

    async def _poll_expired(self) -> bool:
        if self._clock() - self._last_poll < self._config.max_poll_interval_ms / 1000:
            return False
        log.warning(
            "consumer_poll_interval_exceeded",
            group=self._coordinator.group_id,
            max_poll_interval_ms=self._config.max_poll_interval_ms,
            note="poll() was not called in time: leaving the group; the next poll() rejoins",
        )
        self._end_membership()
        async with self._reconciling:
            await self._handover.lose(self._handover.owned())
        self.left_for_poll_timeout = True
        return True

    async def _leave(self, epoch: int) -> None:
        request = gpb.ConsumerGroupHeartbeatRequest(
            group_id=self._coordinator.group_id, member_id=self.member_id, member_epoch=epoch
        )
        if self._config.group_instance_id is not None:
            request.instance_id = self._config.group_instance_id
        timeout = self._coordinator.request_timeout_s
        if self.member_id:
            try:
                await self._coordinator.call(
                    functools.partial(_heartbeat, request=request, timeout_s=timeout),
                    Deadline(timeout),
                )
                log.info(
                    "consumer_group_left",
                    group=self._coordinator.group_id,
                    member_id=self.member_id,
                    epoch=epoch,
                )
            except RaftkaError as e:
                log.warning("consumer_group_leave_failed", error=e.message)
        self.epoch = JOIN
        if epoch == LEAVE:
            # That membership is over: a later join is a new member, so nothing still in
            # flight from the old one (a heartbeat on its closed stream) can touch it.
            self.member_id = uuid.uuid4().hex

    # ------------------------------------------------------------------ requests and answers

    def _request(self) -> gpb.ConsumerGroupHeartbeatRequest:
        c = self._config
        sub = self.subscription
        request = gpb.ConsumerGroupHeartbeatRequest(
            group_id=self._coordinator.group_id,
            member_id=self.member_id,
            member_epoch=self.epoch,
            rebalance_timeout_ms=c.max_poll_interval_ms,
            session_timeout_ms=c.session_timeout_ms,
        )
        if c.group_instance_id is not None:
            request.instance_id = c.group_instance_id
        if c.group_remote_assignor is not None:
            request.server_assignor = c.group_remote_assignor
        if sub.pattern is not None:
            request.subscribed_topic_regex = sub.pattern
            request.subscription_set = True  # no exact names
        else:
            request.subscribed_topic_names.extend(sub.topics)
            request.subscription_set = True
            if self.epoch != JOIN:
                request.subscribed_topic_regex = ""
        if self.epoch != JOIN:
            request.owned_partitions.extend(by_topic(self._handover.owned()))
            request.owned_partitions_set = True
        return request

    async def _handle(self, response: gpb.ConsumerGroupHeartbeatResponse) -> None:
        if response.error_code in FENCED:
            await self._fenced(group_error(response.error_code, response.error_message))
            return
        if response.error_code == ErrorCode.UNRELEASED_INSTANCE_ID and self._instance_held():
            return
        if response.error_code != ErrorCode.NONE:
            self._fail(group_error(response.error_code, response.error_message))
            return
        self._unreleased_since = None
        if self.epoch == JOIN and response.member_epoch > 0:
            log.info(
                "consumer_group_joined",
                group=self._coordinator.group_id,
                member_id=response.member_id,
                epoch=response.member_epoch,
            )
        if response.member_id:
            self.member_id = response.member_id
        if response.member_epoch < 0:
            return  # the answer to a leave
        self.epoch = response.member_epoch
        if response.heartbeat_interval_ms > 0:
            interval = response.heartbeat_interval_ms / 1000
            if interval < self.heartbeat_s:
                self._wake.set()  # the wait in progress was for the longer interval
            self.heartbeat_s = interval
        if response.has_assignment:
            self._target = frozenset(from_topics(response.assignment.topic_partitions))
        self._target_epoch = response.member_epoch
        if self._reconciled != (self._target, self._target_epoch) and (
            self._reconciler is None
            or self._reconciler.done()
            or self._reconciler_of != self._membership  # it only finishes an old step
        ):
            self._reconciler_of = self._membership
            self._reconciler = asyncio.ensure_future(self._reconcile(self._membership))

    async def _fenced(self, error: RaftkaError) -> None:
        """The coordinator no longer knows this member (or its epoch): another member may own
        its partitions already. Drop them without committing and rejoin with epoch 0."""
        log.warning(
            "consumer_group_fenced",
            group=self._coordinator.group_id,
            member_id=self.member_id,
            epoch=self.epoch,
            error=error.message,
        )
        self._end_membership()
        async with self._reconciling:
            await self._handover.lose(self._handover.owned())
        self.epoch = JOIN  # the same member id: the coordinator resets that member
        self._wake.set()  # rejoin now

    def _end_membership(self) -> None:
        """Fenced, leaving or left: what was reconciled belongs to the old membership, and a
        reconcile still running finishes its step and stops."""
        self._membership += 1
        self._target, self._target_epoch = frozenset(), JOIN
        self._reconciled = None
        self.assignment_epoch = LEAVE

    async def _reconcile(self, membership: int) -> None:
        """Bring what the member owns to the newest target, one step at a time, until no
        newer target has come in meanwhile (the heartbeats go on beside it)."""
        while membership == self._membership:
            target, epoch = self._target, self._target_epoch
            if self._reconciled == (target, epoch):
                return
            async with self._reconciling:
                if membership != self._membership:
                    return
                owned = self._handover.owned()
                revoked, added = owned - target, target - owned
                if revoked or added:
                    log.info(
                        "consumer_group_reconciling",
                        group=self._coordinator.group_id,
                        epoch=epoch,
                        revoked=sorted(map(str, revoked)),
                        added=sorted(map(str, added)),
                    )
                await self._handover.revoke(revoked)
                if membership != self._membership:
                    return  # fenced or left meanwhile: the rest is lost with it
                # It holds nothing outside the target now: records are of this epoch's.
                self.assignment_epoch = epoch
                await self._handover.add(set(added))
                if membership != self._membership:
                    return
                self._reconciled = (target, epoch)
            if revoked or added:
                self._wake.set()  # report what it owns now

    def _instance_held(self) -> bool:
        """A static member restarted after a crash: its previous incarnation still holds the
        instance id until its session times out (it never sent -2). Keep joining, about twice a
        second, for up to that session timeout (and a second more); False once it is over."""
        now = self._clock()
        if self._unreleased_since is None:
            self._unreleased_since = now
            log.warning(
                "consumer_group_instance_id_unreleased",
                group=self._coordinator.group_id,
                instance_id=self._config.group_instance_id,
                waiting_s=self._config.session_timeout_ms / 1000,
            )
        if now - self._unreleased_since > self._config.session_timeout_ms / 1000 + 1:
            return False
        asyncio.get_running_loop().call_later(UNRELEASED_RETRY_S, self._wake.set)
        return True

    def _fail(self, error: RaftkaError) -> None:
        log.error(
            "consumer_group_membership_failed",
            group=self._coordinator.group_id,
            error=error.message,
        )
        self.fatal = error


async def _heartbeat(
    stub: GroupServiceStub, *, request: gpb.ConsumerGroupHeartbeatRequest, timeout_s: float
) -> gpb.ConsumerGroupHeartbeatResponse:
    response: gpb.ConsumerGroupHeartbeatResponse = await stub.ConsumerGroupHeartbeat(
        request, timeout=timeout_s
    )
    return response
