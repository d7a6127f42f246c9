"""Broker lifecycle on the active controller: registration, heartbeats, fencing (KIP-631).

Broker states (Kafka's BrokerHeartbeatManager): FENCED, UNFENCED, CONTROLLED_SHUTDOWN and
SHUTDOWN_NOW, derived from the registration in the image. A heartbeat computes the next state;
a change of state yields records:
- to UNFENCED: BrokerRegistrationChangeRecord(fenced=-1) + elections for leaderless partitions
  the broker can lead;
- to FENCED or SHUTDOWN_NOW: ISR removal and leader moves + BrokerRegistrationChangeRecord(1);
- to CONTROLLED_SHUTDOWN: BrokerRegistrationChangeRecord(in_controlled_shutdown=1) + ISR
  removal and leader moves.
The manager owns the (in-memory) BrokerSessions and updates them; it never mutates the image.
"""

from __future__ import annotations

import enum

from raftka.common.errors import (
    BrokerIdNotRegisteredError,
    DuplicateBrokerRegistrationError,
    InconsistentClusterIdError,
    InvalidRequestError,
    StaleBrokerEpochError,
)
from raftka.common.ids import BrokerEpoch, BrokerId
from raftka.common.metadata.image import MetadataImage
from raftka.common.metadata.model import BrokerRegistration
from raftka.common.metadata.records import (
    ENTER_CONTROLLED_SHUTDOWN,
    FENCE,
    UNFENCE,
    endpoints_from_proto,
    endpoints_to_proto,
    register_broker_record,
    registration_change_record,
)
from raftka.controller.control.partition_change import elect_leaders_for, remove_from_isrs
from raftka.controller.control.result import MAX_SLICE_RECORDS, ControllerResult
from raftka.controller.control.sessions import BrokerSessions
from raftka.v1.controller_pb2 import (
    BrokerDescription,
    BrokerHeartbeatRequest,
    BrokerHeartbeatResponse,
    RegisterBrokerRequest,
    RegisterBrokerResponse,
)
from raftka.v1.metadata_pb2 import MetadataRecord


class BrokerControlState(enum.Enum):
    FENCED = "fenced"
    UNFENCED = "unfenced"
    CONTROLLED_SHUTDOWN = "controlled_shutdown"
    SHUTDOWN_NOW = "shutdown_now"


def broker_state(registration: BrokerRegistration) -> BrokerControlState:
    if registration.in_controlled_shutdown:
        return BrokerControlState.CONTROLLED_SHUTDOWN
    if registration.fenced:
        return BrokerControlState.FENCED
    return BrokerControlState.UNFENCED


def fence_broker_records(
    image: MetadataImage, broker_id: int, limit: int | None = None
) -> list[MetadataRecord]:
    """Records that fence ``broker_id``: it leaves every ISR (never emptying one), its
    leaderships move to other ISR members (or to -1), then it is marked fenced. Empty when the
    broker is unknown or already fenced. With ``limit``: at most ``limit`` ISR changes, and
    the fence record only once no change is left (``fence_slice``)."""
    reg = image.broker(broker_id)
    if reg is None or reg.fenced:
        return []
    records = remove_from_isrs(image, reg.broker_id, limit)
    if limit is None or len(records) < limit:
        records.append(registration_change_record(reg.broker_id, reg.epoch, fenced=FENCE))
    return records


def fence_slice(image: MetadataImage, broker_id: int) -> tuple[list[MetadataRecord], bool]:
    """The next slice of fencing ``broker_id`` and whether more slices follow (the broker is
    marked fenced by the last one, after it has left every ISR)."""
    records = fence_broker_records(image, broker_id, MAX_SLICE_RECORDS)
    return records, len(records) >= MAX_SLICE_RECORDS


class ClusterManager:
    """Registration, heartbeats and session-expiry fencing of brokers."""

    def __init__(self, cluster_id: str, sessions: BrokerSessions) -> None:
        self._cluster_id = cluster_id
        self._sessions = sessions

    @property
    def sessions(self) -> BrokerSessions:
        return self._sessions

    def register_broker(
        self, image: MetadataImage, request: RegisterBrokerRequest, *, next_index: int, now_ms: int
    ) -> ControllerResult[RegisterBrokerResponse]:
        """``next_index`` is the Raft index the returned records will occupy: a new
        incarnation's broker epoch."""
        _validate_registration(request)
        if request.cluster_id != self._cluster_id:
            raise InconsistentClusterIdError(
                f"broker {request.broker_id} belongs to cluster {request.cluster_id!r}, "
                f"but this is cluster {self._cluster_id!r}"
            )
        existing = image.broker(request.broker_id)
        if existing is not None and existing.incarnation_id == request.incarnation_id:
            if existing.endpoints != endpoints_from_proto(request.listeners) or (
                existing.rack != request.rack
            ):
                raise InvalidRequestError(
                    f"broker {request.broker_id} re-registered incarnation "
                    f"{request.incarnation_id!r} with different listeners or rack"
                )
            self._sessions.touch(existing.broker_id, now_ms)
            return ControllerResult((), RegisterBrokerResponse(broker_epoch=existing.epoch))
        if existing is not None and self._sessions.is_live(image, existing.broker_id, now_ms):
            raise DuplicateBrokerRegistrationError(
                f"broker {request.broker_id} is registered with incarnation "
                f"{existing.incarnation_id!r} and a live session; incarnation "
                f"{request.incarnation_id!r} may register once that session expires"
            )
        if existing is not None:
            # The old incarnation may have lost unflushed data: take it out of ISRs first
            # (in slices; the registration comes with the last one).
            removals = remove_from_isrs(image, existing.broker_id, MAX_SLICE_RECORDS)
            if len(removals) >= MAX_SLICE_RECORDS:
                response = RegisterBrokerResponse(broker_epoch=-1)
                return ControllerResult(tuple(removals), response, more=True)
            records: list[MetadataRecord] = removals
        else:
            records = []
        registration = BrokerRegistration(
            broker_id=BrokerId(request.broker_id),
            epoch=BrokerEpoch(next_index),
            incarnation_id=request.incarnation_id,
            endpoints=endpoints_from_proto(request.listeners),
            rack=request.rack,
            fenced=True,
        )
        records.append(register_broker_record(registration))
        self._sessions.restart(registration.broker_id, now_ms)
        return ControllerResult(tuple(records), RegisterBrokerResponse(broker_epoch=next_index))

    def heartbeat(
        self, image: MetadataImage, request: BrokerHeartbeatRequest, *, next_index: int, now_ms: int
    ) -> ControllerResult[BrokerHeartbeatResponse]:
        """Processes one heartbeat; ``next_index`` is the Raft index the records will occupy."""
        reg = check_broker_epoch(image, request.broker_id, request.broker_epoch)
        broker_id = reg.broker_id
        self._sessions.touch(broker_id, now_ms, request.current_metadata_index)
        current = broker_state(reg)
        target = self._next_state(image, reg, current, request)
        records: list[MetadataRecord] = []
        more = False
        if target is not current:
            if target is BrokerControlState.UNFENCED:
                records.append(registration_change_record(broker_id, reg.epoch, fenced=UNFENCE))
                more = self._elect_slice(image, broker_id, records, MAX_SLICE_RECORDS - 1)
            elif target is BrokerControlState.CONTROLLED_SHUTDOWN:
                records.append(
                    registration_change_record(
                        broker_id, reg.epoch, in_controlled_shutdown=ENTER_CONTROLLED_SHUTDOWN
                    )
                )
                removals = remove_from_isrs(image, broker_id, MAX_SLICE_RECORDS)
                records.extend(removals)
                more = len(removals) >= MAX_SLICE_RECORDS
                self._sessions.set_controlled_shutdown_index(broker_id, next_index)
            else:  # FENCED or SHUTDOWN_NOW
                records, more = fence_slice(image, broker_id)
        elif target is BrokerControlState.UNFENCED and self._sessions.elections_pending(broker_id):
            # The elections of its unfencing past the first slice (or left unwritten when an
            # earlier controller lost its leadership).
            more = self._elect_slice(image, broker_id, records, MAX_SLICE_RECORDS)
        elif target is BrokerControlState.CONTROLLED_SHUTDOWN:
            # The ISR removals of entering controlled shutdown, past its first slice (or
            # left unwritten when an earlier controller lost its leadership).
            records = remove_from_isrs(image, broker_id, MAX_SLICE_RECORDS)
            more = len(records) >= MAX_SLICE_RECORDS
            if records:
                self._sessions.set_controlled_shutdown_index(broker_id, next_index)
        response = BrokerHeartbeatResponse(
            is_caught_up=request.current_metadata_index >= reg.epoch,
            is_fenced=target in (BrokerControlState.FENCED, BrokerControlState.SHUTDOWN_NOW),
            should_shut_down=target is BrokerControlState.SHUTDOWN_NOW,
        )
        return ControllerResult(tuple(records), response, more=more)

    def _elect_slice(
        self, image: MetadataImage, broker_id: BrokerId, records: list[MetadataRecord], limit: int
    ) -> bool:
        """Adds up to ``limit`` elections of leaderless partitions ``broker_id`` can lead to
        ``records``; True when more may follow (planned again on the image they leave)."""
        elections = elect_leaders_for(image, broker_id, limit)
        records.extend(elections)
        more = len(elections) >= limit
        self._sessions.set_elections_pending(broker_id, more)
        return more

    def _next_state(
        self,
        image: MetadataImage,
        reg: BrokerRegistration,
        current: BrokerControlState,
        request: BrokerHeartbeatRequest,
    ) -> BrokerControlState:
        if current is BrokerControlState.FENCED:
            if request.want_shut_down:
                return BrokerControlState.SHUTDOWN_NOW
            if not request.want_fence and request.current_metadata_index >= reg.epoch:
                return BrokerControlState.UNFENCED
            return BrokerControlState.FENCED
        if current is BrokerControlState.UNFENCED:
            if request.want_fence:
                if request.want_shut_down:
                    return BrokerControlState.SHUTDOWN_NOW
                return BrokerControlState.FENCED
            if request.want_shut_down:
                if image.has_leaderships(reg.broker_id):
                    return BrokerControlState.CONTROLLED_SHUTDOWN
                return BrokerControlState.SHUTDOWN_NOW
            return BrokerControlState.UNFENCED
        # CONTROLLED_SHUTDOWN: done once it leads nothing and the other active brokers have
        # applied the entry that moved its leaderships away.
        if image.has_leaderships(reg.broker_id):
            return BrokerControlState.CONTROLLED_SHUTDOWN
        shutdown_index = self._sessions.controlled_shutdown_index(reg.broker_id)
        if shutdown_index is None:
            # Entered under an earlier active controller: wait for everything we know of.
            shutdown_index = image.last_applied_index
            self._sessions.set_controlled_shutdown_index(reg.broker_id, shutdown_index)
        lowest = self._sessions.lowest_active_metadata_index(image, excluding=reg.broker_id)
        if lowest is None or lowest >= shutdown_index:
            return BrokerControlState.SHUTDOWN_NOW
        return BrokerControlState.CONTROLLED_SHUTDOWN

    def fence_one_expired_broker(
        self, image: MetadataImage, now_ms: int
    ) -> ControllerResult[BrokerId | None]:
        """Fences the longest-silent broker whose session lapsed (None if none did). Fence one
        at a time: apply the records to the working image before asking again."""
        for broker_id in self._sessions.expired(image, now_ms):
            records, more = fence_slice(image, broker_id)
            if records:
                return ControllerResult(tuple(records), broker_id, more=more)
        return ControllerResult((), None)


def describe_brokers(image: MetadataImage) -> list[BrokerDescription]:
    """Every registered broker, by id, for DescribeCluster."""
    return [
        BrokerDescription(
            broker_id=reg.broker_id,
            broker_epoch=reg.epoch,
            incarnation_id=reg.incarnation_id,
            endpoints=endpoints_to_proto(reg.endpoints),
            rack=reg.rack,
            fenced=reg.fenced,
            in_controlled_shutdown=reg.in_controlled_shutdown,
        )
        for reg in (image.brokers[b] for b in sorted(image.brokers))
    ]


def check_broker_epoch(
    image: MetadataImage, broker_id: int, broker_epoch: int
) -> BrokerRegistration:
    """The registration a request from ``broker_id`` at ``broker_epoch`` refers to; raises
    BrokerIdNotRegisteredError or StaleBrokerEpochError."""
    reg = image.broker(broker_id)
    if reg is None:
        raise BrokerIdNotRegisteredError(f"broker {broker_id} is not registered")
    if broker_epoch != reg.epoch:
        raise StaleBrokerEpochError(
            f"broker {broker_id} sent broker epoch {broker_epoch}, but its current epoch is "
            f"{reg.epoch}; register again"
        )
    return reg


def _validate_registration(request: RegisterBrokerRequest) -> None:
    if request.broker_id < 0:
        raise InvalidRequestError(f"broker_id must be >= 0, got {request.broker_id}")
    if not request.incarnation_id:
        raise InvalidRequestError("incarnation_id is empty")
    names = [listener.name for listener in request.listeners]
    if len(set(names)) != len(names):
        raise InvalidRequestError(f"listener names are not unique: {names}")
    for listener in request.listeners:
        if not listener.name or not listener.host:
            raise InvalidRequestError(f"listener {listener.name!r} needs a name and a host")
        if not 1 <= listener.port <= 65535:
            raise InvalidRequestError(
                f"listener {listener.name!r} has port {listener.port}; allowed: 1..65535"
            )
