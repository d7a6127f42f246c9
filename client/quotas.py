"""Client quotas from Python: set, remove and list them over the controllers' QuotaService.

An entity is a mapping from entity type ("user", "client-id") to a name, or to None for the
default of that type (Kafka's ``ClientQuotaEntity``): ``{"user": "alice", "client-id": "app"}``,
``{"client-id": None}`` (every client id without a quota of its own). Quotas are
``producer_byte_rate`` and ``consumer_byte_rate`` (bytes per second, per broker) and
``request_percentage`` (% of one request-handling thread). Used by AsyncAdmin and
``raftka quotas``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from raftka.client.errors import PartitionError
from raftka.common.rpc.controller_client import ControllerClient
from raftka.v1 import common_pb2 as cpb
from raftka.v1 import security_pb2 as spb
from raftka.v1.security_pb2_grpc import QuotaServiceStub

QuotaEntity = Mapping[str, str | None]
"""{"user" | "client-id": name, or None for the default}."""

MATCH_ANY = "*"
"""In a describe filter: any name or the default."""


def entity_proto(entity: QuotaEntity) -> cpb.ClientQuotaEntity:
    return cpb.ClientQuotaEntity(
        components=[
            cpb.ClientQuotaEntityComponent(
                entity_type=kind, entity_name=name or "", is_default=name is None
            )
            for kind, name in sorted(entity.items())
        ]
    )


def entity_of(proto: cpb.ClientQuotaEntity) -> dict[str, str | None]:
    return {c.entity_type: None if c.is_default else c.entity_name for c in proto.components}


@dataclass(frozen=True, slots=True)
class QuotaEntry:
    """An entity and its quotas."""

    entity: dict[str, str | None]
    values: dict[str, float]


async def alter_client_quotas(
    client: ControllerClient,
    entity: QuotaEntity,
    set: Mapping[str, float] | None = None,
    remove: Sequence[str] = (),
    *,
    validate_only: bool = False,
) -> None:
    """Set and remove quotas of one entity; raises the controller's error (INVALID_REQUEST with
    what is wrong) when it refuses them, in which case nothing changed."""
    ops = [spb.ClientQuotaOp(key=k, value=v) for k, v in (set or {}).items()]
    ops += [spb.ClientQuotaOp(key=k, remove=True) for k in remove]
    request = spb.AlterClientQuotasRequest(
        entries=[spb.ClientQuotaAlteration(entity=entity_proto(entity), ops=ops)],
        validate_only=validate_only,
    )
    response: spb.AlterClientQuotasResponse = await client.call_service(
        QuotaServiceStub, lambda stub, timeout: stub.AlterClientQuotas(request, timeout=timeout)
    )
    for result in response.results:
        if result.error_code != cpb.NONE:
            raise PartitionError(result.error_code, result.error_message)


async def describe_client_quotas(
    client: ControllerClient, filter: QuotaEntity | None = None, *, strict: bool = False
) -> list[QuotaEntry]:
    """The entities with quotas matching ``filter`` (type -> name, None for the default, or
    ``MATCH_ANY``; None or empty: every entity), and their quotas. ``strict``: only entities
    with exactly the filter's types."""
    components = []
    for kind, name in sorted((filter or {}).items()):
        if name is None:
            match = spb.ClientQuotaFilterComponent(
                entity_type=kind, match_type=spb.CLIENT_QUOTA_MATCH_DEFAULT
            )
        elif name == MATCH_ANY:
            match = spb.ClientQuotaFilterComponent(
                entity_type=kind, match_type=spb.CLIENT_QUOTA_MATCH_ANY
            )
        else:
            match = spb.ClientQuotaFilterComponent(
                entity_type=kind, match_type=spb.CLIENT_QUOTA_MATCH_EXACT, match=name
            )
        components.append(match)
    request = spb.DescribeClientQuotasRequest(components=components, strict=strict)
    response: spb.DescribeClientQuotasResponse = await client.call_service(
        QuotaServiceStub,
        lambda stub, timeout: stub.DescribeClientQuotas(request, timeout=timeout),
    )
    if response.error_code != cpb.NONE:
        raise PartitionError(response.error_code, response.error_message)
    return [QuotaEntry(entity_of(e.entity), dict(e.values)) for e in response.entries]
