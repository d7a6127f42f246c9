"""AsyncAdmin / Admin: cluster administration from Python, over the controllers' admin RPCs.

    async with AsyncAdmin(["127.0.0.1:9093"]) as admin:
        await admin.create_topic("orders", partitions=6, replication_factor=3,
                                 configs={"min.insync.replicas": "2"})
        print(await admin.list_topics())

Calls go to the active controller (redirected and retried within ``timeout_s`` by
ControllerClient). A refused item raises a RaftkaError with the controller's error code and
message (e.g. TOPIC_ALREADY_EXISTS). Descriptions are the protobuf messages documented in
proto/raftka/v1/controller.proto. ``Admin`` is the same API, blocking.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from raftka.client.acl_admin import AclAdmin, DescribedAcl
from raftka.client.connections import BrokerConnections
from raftka.client.discovery import controllers_from_brokers
from raftka.client.errors import PartitionError
from raftka.client.group_admin import (
    GroupAdmin,
    GroupDescription,
    ListedGroup,
    OffsetReset,
    ResetSpec,
)
from raftka.client.loop_thread import LoopThread
from raftka.client.metadata_cache import MetadataCache
from raftka.client.quotas import QuotaEntity, QuotaEntry
from raftka.client.quotas import alter_client_quotas as _alter_client_quotas
from raftka.client.quotas import describe_client_quotas as _describe_client_quotas
from raftka.client.types import TopicPartition
from raftka.common.errors import RaftkaError
from raftka.common.rpc.controller_client import ControllerClient
from raftka.common.security import scram
from raftka.common.security.acl_filters import MATCH_ALL, AclFilter
from raftka.common.security.model import Acl
from raftka.common.security.tls import ChannelSecurity
from raftka.v1 import common_pb2 as cpb
from raftka.v1 import controller_pb2 as pb
from raftka.v1 import security_pb2 as spb
from raftka.v1.common_pb2 import SCRAM_SHA_512
from raftka.v1.security_pb2_grpc import UserServiceStub


def _check(code: int, message: str, topic: str = "", partition: int = -1) -> None:
    if code != cpb.NONE:
        raise PartitionError(code, message, topic, partition)


class AsyncAdmin:
    def __init__(
        self,
        bootstrap_controllers: Sequence[str] = (),
        *,
        bootstrap_servers: Sequence[str] = (),
        timeout_s: float = 15.0,
        connections: BrokerConnections | None = None,
        security: ChannelSecurity | None = None,
    ) -> None:
        """Give the controllers' addresses, or only brokers' (``bootstrap_servers``): the
        first call then asks a broker where the controllers are. Group operations talk to
        the brokers: those of ``bootstrap_servers``, else the ones the controllers list.
        ``security``: TLS / client certificate / bearer token (see raftka.client.security)."""
        if not bootstrap_controllers and not bootstrap_servers:
            raise ValueError("give bootstrap_controllers or bootstrap_servers (host:port)")
        servers = list(bootstrap_servers)
        self._servers = servers
        self._timeout_s = timeout_s
        self._client = ControllerClient(
            list(bootstrap_controllers),
            timeout_s=timeout_s,
            discover=(
                (lambda: controllers_from_brokers(servers, security=security)) if servers else None
            ),
            security=security,
        )
        self._security = security
        self._connections = connections
        self._group_admin: GroupAdmin | None = None

    async def __aenter__(self) -> AsyncAdmin:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._client.close()
        if self._connections is not None:
            await self._connections.close()

    # ---- consumer groups ----

    async def _groups(self) -> GroupAdmin:
        if self._group_admin is None:
            servers = self._servers
            if not servers:
                cluster = await self._client.describe_cluster()
                servers = [
                    f"{e.host}:{e.port}"
                    for b in cluster.brokers
                    for e in b.endpoints
                    if e.name == "CLIENT"
                ]
                if not servers:
                    raise RaftkaError("the cluster has no registered broker to ask about groups")
            if self._connections is None:
                self._connections = BrokerConnections(
                    client_id="raftka-admin", security=self._security
                )
            metadata = MetadataCache(servers, self._connections, request_timeout_s=self._timeout_s)
            self._group_admin = GroupAdmin(metadata, self._connections, timeout_s=self._timeout_s)
        return self._group_admin

    async def list_groups(self, states: Sequence[str] = ()) -> list[ListedGroup]:
        """Every consumer group (and simple group) of the cluster, by id; ``states``
        filters ("empty", "assigning", "reconciling", "stable")."""
        return await (await self._groups()).list_groups(states)

    async def describe_groups(self, group_ids: Sequence[str]) -> list[GroupDescription]:
        """Each group's state, epochs, members and assignments, and per partition its
        committed offset, end offset and lag. An unknown group raises GroupIdNotFoundError."""
        groups = await self._groups()
        return [await groups.describe_group(g) for g in group_ids]

    async def reset_offsets(
        self,
        group_id: str,
        spec: ResetSpec,
        partitions: Iterable[TopicPartition | str],
        *,
        dry_run: bool = True,
    ) -> list[OffsetReset]:
        """Move an empty group's committed offsets (see GroupAdmin.reset_offsets); a dry run
        unless ``dry_run=False``."""
        return await (await self._groups()).reset_offsets(
            group_id, spec, partitions, dry_run=dry_run
        )

    async def delete_groups(self, group_ids: Sequence[str]) -> dict[str, RaftkaError | None]:
        """Delete empty groups and their offsets: per group, None or the refusal."""
        return await (await self._groups()).delete_groups(group_ids)

    async def delete_offsets(
        self, group_id: str, partitions: Iterable[TopicPartition | str]
    ) -> dict[TopicPartition, RaftkaError | None]:
        """Delete a group's committed offsets for some partitions (a topic name: all of its
        partitions): per partition, None or the refusal."""
        return await (await self._groups()).delete_offsets(group_id, partitions)

    # ---- topics ----

    async def create_topic(
        self,
        name: str,
        partitions: int = 0,
        replication_factor: int = 0,
        configs: Mapping[str, str] | None = None,
        *,
        validate_only: bool = False,
    ) -> pb.CreateTopicResult:
        """Create a topic (0 partitions / replication factor: the cluster defaults)."""
        (result,) = await self._client.create_topics(
            [
                pb.NewTopic(
                    name=name,
                    num_partitions=partitions,
                    replication_factor=replication_factor,
                    configs=dict(configs or {}),
                )
            ],
            validate_only=validate_only,
        )
        _check(result.error_code, result.error_message, name)
        return result

    async def delete_topics(self, *names: str) -> None:
        for r in await self._client.delete_topics(names):
            _check(r.error_code, r.error_message, r.name)

    async def list_topics(self) -> list[str]:
        return sorted(t.name for t in await self._client.describe_topics())

    async def describe_topics(self, *names: str) -> list[pb.TopicDescription]:
        topics = await self._client.describe_topics(names)
        for t in topics:
            _check(t.error_code, t.error_message, t.name)
        return topics

    async def add_partitions(self, name: str, total: int) -> None:
        """Raise ``name``'s partition count to ``total``."""
        (result,) = await self._client.create_partitions({name: total})
        _check(result.error_code, result.error_message, name)

    # ---- configs ----

    async def describe_configs(self, topic: str) -> dict[str, cpb.ConfigEntry]:
        resource = pb.ConfigResource(type=cpb.RESOURCE_TYPE_TOPIC, name=topic)
        (result,) = await self._client.describe_configs([resource])
        _check(result.error_code, result.error_message, topic)
        return {e.name: e for e in result.entries}

    async def alter_configs(
        self,
        topic: str,
        set: Mapping[str, str] | None = None,
        delete: Sequence[str] = (),
        *,
        validate_only: bool = False,
    ) -> None:
        ops = [
            pb.AlterConfigOp(name=n, op=pb.AlterConfigOp.SET, value=v)
            for n, v in (set or {}).items()
        ]
        ops += [pb.AlterConfigOp(name=n, op=pb.AlterConfigOp.DELETE) for n in delete]
        resource = pb.AlterConfigResource(type=cpb.RESOURCE_TYPE_TOPIC, name=topic, ops=ops)
        (result,) = await self._client.alter_configs([resource], validate_only=validate_only)
        _check(result.error_code, result.error_message, topic)

    # ---- client quotas ----

    async def alter_client_quotas(
        self,
        entity: QuotaEntity,
        set: Mapping[str, float] | None = None,
        remove: Sequence[str] = (),
        *,
        validate_only: bool = False,
    ) -> None:
        """Set and remove quotas of ``entity`` ({"user" | "client-id": name, None for the
        default}), e.g. ``alter_client_quotas({"client-id": "app"}, {"producer_byte_rate":
        1048576})``. See raftka.client.quotas."""
        await _alter_client_quotas(self._client, entity, set, remove, validate_only=validate_only)

    async def describe_client_quotas(
        self, filter: QuotaEntity | None = None, *, strict: bool = False
    ) -> list[QuotaEntry]:
        """The entities with quotas matching ``filter`` (None: all) and their quotas."""
        return await _describe_client_quotas(self._client, filter, strict=strict)

    # ---- cluster and quorum ----

    # ---- user credentials (bearer tokens) ----

    async def set_user_password(
        self,
        name: str,
        password: str,
        *,
        mechanism: int = SCRAM_SHA_512,
        iterations: int = scram.DEFAULT_ITERATIONS,
    ) -> None:
        """Create or replace ``name``'s credential. The password never leaves this process:
        only PBKDF2 of it (with a fresh salt) is sent, and the cluster keeps keys derived
        from that."""
        salt = scram.new_salt()
        upsertion = spb.ScramCredentialUpsertion(
            name=name,
            mechanism=mechanism,  # type: ignore[arg-type]
            iterations=iterations,
            salt=salt,
            salted_password=scram.salted_password(password, salt, iterations, mechanism),
        )
        await self._alter_users(spb.AlterUserScramCredentialsRequest(upsertions=[upsertion]))

    async def delete_user(self, name: str, *, mechanisms: Sequence[int] = ()) -> None:
        """Remove ``name``'s credentials (all of them, or those of ``mechanisms``)."""
        if not mechanisms:
            described = await self.describe_users([name])
            mechanisms = [c.mechanism for c in described[0].credentials]
        await self._alter_users(
            spb.AlterUserScramCredentialsRequest(
                deletions=[
                    spb.ScramCredentialDeletion(name=name, mechanism=m)  # type: ignore[arg-type]
                    for m in mechanisms
                ]
            )
        )

    async def describe_users(self, names: Sequence[str] = ()) -> list[spb.DescribedUserCredentials]:
        """Users with credentials (mechanisms and iterations, never keys); a named user
        without any raises ResourceNotFoundError."""
        request = spb.DescribeUserScramCredentialsRequest(names=list(names))
        response = await self._client.call_service(
            UserServiceStub,
            lambda stub, t: stub.DescribeUserScramCredentials(request, timeout=t),
            any_controller=True,
        )
        for result in response.results:
            _check(result.error_code, f"user {result.name!r}: {result.error_message}")
        return list(response.results)

    async def _alter_users(self, request: spb.AlterUserScramCredentialsRequest) -> None:
        response = await self._client.call_service(
            UserServiceStub, lambda stub, t: stub.AlterUserScramCredentials(request, timeout=t)
        )
        for result in response.results:
            _check(result.error_code, f"user {result.name!r}: {result.error_message}")

    async def describe_cluster(self) -> pb.DescribeClusterResponse:
        return await self._client.describe_cluster()

    async def describe_quorum(self) -> pb.DescribeQuorumResponse:
        return await self._client.describe_quorum()

    async def transfer_controller_leadership(self, to_node: int = -1) -> int:
        """Hand Raft leadership to ``to_node`` (-1: the most caught-up voter); returns the new
        leader's id."""
        response = await self._client.transfer_leadership(to_node)
        return int(response.new_leader_id)

    # ---- partitions ----

    async def elect_leaders(
        self,
        election: Literal["preferred", "unclean"] = "preferred",
        partitions: Sequence[TopicPartition] = (),
    ) -> dict[TopicPartition, int]:
        """Elect leaders for ``partitions`` (every partition when empty); return the new leader
        of each partition that changed. A partition that could not be elected raises."""
        kind = pb.ELECTION_TYPE_UNCLEAN if election == "unclean" else pb.ELECTION_TYPE_PREFERRED
        results = await self._client.elect_leaders(
            kind, [(p.topic, p.partition) for p in partitions]
        )
        elected: dict[TopicPartition, int] = {}
        for topic in results:
            for p in topic.partitions:
                if p.error_code == cpb.ELECTION_NOT_NEEDED:
                    continue
                _check(p.error_code, p.error_message, topic.topic, p.partition)
                elected[TopicPartition(topic.topic, p.partition)] = p.leader
        return elected

    async def reassign_partitions(
        self, targets: Mapping[TopicPartition, Sequence[int] | None]
    ) -> None:
        """Move each partition to its target replicas (None cancels its reassignment)."""
        results = await self._client.alter_partition_reassignments(
            {(tp.topic, tp.partition): r for tp, r in targets.items()}
        )
        for topic in results:
            for p in topic.partitions:
                _check(p.error_code, p.error_message, topic.name, p.partition)

    async def list_reassignments(self, *topics: str) -> list[pb.OngoingReassignment]:
        return await self._client.list_partition_reassignments(topics)

    # ---- ACLs (raftka.client.acl_admin) ----

    async def create_acls(self, acls: Sequence[Acl]) -> list[str]:
        """Create ACLs; return their ids (an ACL the cluster already has keeps its id). The
        first refused ACL raises (e.g. InvalidRequestError, SecurityDisabledError) after the
        others of the call were created."""
        results = await AclAdmin(self._client).create(acls)
        for result in results:
            if isinstance(result, RaftkaError):
                raise result
        return [r for r in results if isinstance(r, str)]

    async def describe_acls(self, acl_filter: AclFilter = MATCH_ALL) -> list[DescribedAcl]:
        """The ACLs ``acl_filter`` selects (all by default), with their ids."""
        return await AclAdmin(self._client).describe(acl_filter)

    async def delete_acls(self, *filters: AclFilter) -> list[DescribedAcl]:
        """Delete every ACL some filter selects; return them. A refused filter raises after
        the others' ACLs were deleted."""
        deleted: list[DescribedAcl] = []
        for deletion in await AclAdmin(self._client).delete(filters):
            if deletion.error is not None:
                raise deletion.error
            deleted.extend(deletion.deleted)
        return deleted


class Admin:
    """AsyncAdmin's methods, blocking: each call runs on a background event loop."""

    def __init__(
        self,
        bootstrap_controllers: Sequence[str] = (),
        *,
        bootstrap_servers: Sequence[str] = (),
        timeout_s: float = 15.0,
        connections: BrokerConnections | None = None,
        security: ChannelSecurity | None = None,
    ) -> None:
        self._thread = LoopThread("raftka-admin")
        self._admin = AsyncAdmin(
            bootstrap_controllers,
            bootstrap_servers=bootstrap_servers,
            timeout_s=timeout_s,
            connections=connections,
            security=security,
        )

    def __enter__(self) -> Admin:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._thread.run(self._admin.close())
        finally:
            self._thread.stop()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._admin, name)
        if name.startswith("_") or not callable(method):
            raise AttributeError(name)

        def blocking(*args: Any, **kwargs: Any) -> Any:
            return self._thread.run(method(*args, **kwargs))

        blocking.__doc__ = method.__doc__
        return blocking
