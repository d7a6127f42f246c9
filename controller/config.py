"""A controller node's configuration (the ``[controller]`` table of a node's TOML file)."""

from __future__ import annotations

from dataclasses import dataclass

from raftka.common.config import check_host_port
from raftka.common.errors import ConfigFileError


@dataclass(frozen=True, slots=True)
class VoterAddress:
    node_id: int
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.node_id}@{self.host}:{self.port}"


def parse_voters(text: str) -> tuple[VoterAddress, ...]:
    """Parse ``"1@host:port,2@host:port,3@host:port"`` (Kafka's controller.quorum.voters)."""
    voters: list[VoterAddress] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        node, at, address = item.partition("@")
        host, colon, port = address.rpartition(":")
        if not at or not colon or not node.isdigit() or not port.isdigit() or not host:
            raise ConfigFileError(
                f"controller.voters: {item!r} is not of the form <node id>@<host>:<port>"
            )
        voters.append(VoterAddress(int(node), host, int(port)))
    ids = [v.node_id for v in voters]
    if len(set(ids)) != len(ids):
        raise ConfigFileError(f"controller.voters: node ids repeat in {text!r}")
    if len(voters) not in (1, 3, 5):
        raise ConfigFileError(
            f"controller.voters: {len(voters)} voters given; use 3 or 5 (or 1 for a toy cluster)"
        )
    return tuple(voters)


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    voters: str = ""
    """Every voter as ``id@host:port``, comma-separated, identical on all voters."""
    listen: str = ""
    """Address to bind; defaults to this node's own entry in ``voters``. Voters and brokers
    call it; admin clients too when there is no ``client_listen``."""
    client_listen: str = ""
    """Address of a separate listener for admin clients, under ``security.client_auth``
    (``listen`` then takes ``security.internal_client_auth``); empty: none. Redirects to the
    active controller (NOT_CONTROLLER) name its ``voters`` address, so give admin clients
    every controller's client address (see raftka.common.security.listeners)."""
    tick_ms: int = 50
    """One Raft tick. Election and heartbeat intervals are whole numbers of ticks."""
    election_timeout_ms: int = 500
    """Base election timeout T; a follower waits a random time in [T, 2T) without a leader."""
    heartbeat_interval_ms: int = 100
    snapshot_after_bytes: int = 20 * 1024 * 1024
    """Take a snapshot once this many bytes of log sit above the last one (KRaft's default)."""
    broker_session_timeout_ms: int = 3000
    """A broker with no heartbeat for this long is fenced (KRaft: 9000; smaller fails over faster)."""
    request_timeout_ms: int = 10000
    """How long an admin write waits for its records to commit."""
    auto_leader_rebalance_enable: bool = True
    """Periodically give leadership back to preferred replicas (Kafka's
    auto.leader.rebalance.enable)."""
    leader_imbalance_check_interval_ms: int = 300000
    """How often the active controller checks leader imbalance (Kafka: 300 s)."""
    leader_imbalance_per_broker_percentage: int = 10
    """Rebalance a broker's partitions once more than this share of those it prefers to lead
    are led by others (Kafka's leader.imbalance.per.broker.percentage)."""

    def __post_init__(self) -> None:
        if self.listen:
            check_host_port("controller.listen", self.listen)
        if self.client_listen:
            check_host_port("controller.client_listen", self.client_listen)
        for name in (
            "tick_ms",
            "election_timeout_ms",
            "heartbeat_interval_ms",
            "leader_imbalance_check_interval_ms",
        ):
            if getattr(self, name) <= 0:
                raise ConfigFileError(f"controller.{name} must be positive")
        if not 0 <= self.leader_imbalance_per_broker_percentage <= 100:
            raise ConfigFileError(
                "controller.leader_imbalance_per_broker_percentage must be within 0..100"
            )
        if self.election_timeout_ms < 2 * self.heartbeat_interval_ms:
            raise ConfigFileError(
                "controller.election_timeout_ms must be at least twice heartbeat_interval_ms"
            )
        if self.heartbeat_interval_ms < self.tick_ms:
            raise ConfigFileError("controller.heartbeat_interval_ms must be >= tick_ms")

    @property
    def voter_addresses(self) -> tuple[VoterAddress, ...]:
        return parse_voters(self.voters)

    @property
    def election_ticks(self) -> int:
        return max(2, self.election_timeout_ms // self.tick_ms)

    @property
    def heartbeat_ticks(self) -> int:
        return max(1, self.heartbeat_interval_ms // self.tick_ms)
