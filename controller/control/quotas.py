"""Client quotas on the active controller: AlterClientQuotas and DescribeClientQuotas.

AlterClientQuotas checks each entry on its own (Kafka's ClientQuotaControlManager): the entity
has one or two components of the types "user" and "client-id", at most one of each, each named
unless it is the default; the keys are producer_byte_rate, consumer_byte_rate and
request_percentage, each at most once per entry, set to a finite value above 0 or removed. A
refused entry changes nothing and the others still apply. Only real changes become
ClientQuotaRecords (setting a quota to its value, or removing one that is not set, writes
nothing), so the brokers rebuild their quota lookups only when something changed.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from raftka.common.errors import InvalidRequestError, RaftkaError
from raftka.common.metadata.image import MetadataImage
from raftka.common.security.model import (
    QUOTA_ENTITY_TYPES,
    QUOTA_KEYS,
    QuotaEntityKey,
    quota_entity_key,
    quota_entity_proto,
)
from raftka.controller.control.result import ControllerResult
from raftka.v1.common_pb2 import ClientQuotaEntity, ErrorCode
from raftka.v1.metadata_pb2 import ClientQuotaRecord, MetadataRecord
from raftka.v1.security_pb2 import (
    CLIENT_QUOTA_MATCH_ANY,
    CLIENT_QUOTA_MATCH_DEFAULT,
    CLIENT_QUOTA_MATCH_EXACT,
    AlterClientQuotasRequest,
    AlterClientQuotasResponse,
    ClientQuotaAlteration,
    ClientQuotaAlterationResult,
    ClientQuotaEntry,
    ClientQuotaFilterComponent,
    DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
)

MAX_ENTITY_NAME_LENGTH = 255
"""The longest user or client id name a quota names (a client id is cut to 255 characters)."""


def check_entity(entity: ClientQuotaEntity) -> QuotaEntityKey:
    """The entity's key, or InvalidRequestError saying what is wrong with it."""
    if not entity.components:
        raise InvalidRequestError(
            "the quota entity has no components: name a user, a client id, or both "
            "(or their defaults)"
        )
    types = [c.entity_type for c in entity.components]
    for c in entity.components:
        if c.entity_type not in QUOTA_ENTITY_TYPES:
            raise InvalidRequestError(
                f"unknown quota entity type {c.entity_type!r}: use 'user' or 'client-id'"
            )
        if types.count(c.entity_type) > 1:
            raise InvalidRequestError(
                f"the quota entity names {c.entity_type!r} more than once: at most one of each type"
            )
        if not c.is_default and not c.entity_name:
            raise InvalidRequestError(
                f"the {c.entity_type} of the quota entity has no name: name it, or set "
                "is_default for the default"
            )
        if len(c.entity_name) > MAX_ENTITY_NAME_LENGTH:
            raise InvalidRequestError(
                f"the {c.entity_type} name is {len(c.entity_name)} characters long; at most "
                f"{MAX_ENTITY_NAME_LENGTH}"
            )
    return quota_entity_key(entity)


def alter_client_quotas(
    image: MetadataImage, request: AlterClientQuotasRequest
) -> ControllerResult[AlterClientQuotasResponse]:
    """One result per entry; records for the entries that pass and change something (none with
    ``validate_only``)."""
    keys: list[QuotaEntityKey | None] = []
    for alteration in request.entries:
        try:
            keys.append(check_entity(alteration.entity))
        except RaftkaError:
            keys.append(None)
    counts = Counter(k for k in keys if k is not None)
    records: list[MetadataRecord] = []
    response = AlterClientQuotasResponse()
    for alteration, key in zip(request.entries, keys, strict=True):
        result = ClientQuotaAlterationResult(entity=alteration.entity)
        try:
            key = check_entity(alteration.entity)
            if counts[key] > 1:
                raise InvalidRequestError(
                    f"the quota entity {_describe(key)} appears {counts[key]} times in the "
                    "request: put all its changes in one entry"
                )
            changes = _plan_changes(image, key, alteration)
        except RaftkaError as e:
            result.error_code = e.code
            result.error_message = e.message
        else:
            result.error_code = ErrorCode.NONE
            records.extend(changes)
        response.results.append(result)
    if request.validate_only:
        records = []
    return ControllerResult(tuple(records), response)


def _plan_changes(
    image: MetadataImage, key: QuotaEntityKey, alteration: ClientQuotaAlteration
) -> list[MetadataRecord]:
    if not alteration.ops:
        raise InvalidRequestError(f"no quota to set or remove for {_describe(key)}")
    current = image.security.quotas.get(key, {})
    seen: set[str] = set()
    out: list[MetadataRecord] = []
    for op in alteration.ops:
        if op.key not in QUOTA_KEYS:
            raise InvalidRequestError(
                f"unknown quota key {op.key!r}: use one of {', '.join(QUOTA_KEYS)}"
            )
        if op.key in seen:
            raise InvalidRequestError(f"quota key {op.key!r} appears more than once in the entry")
        seen.add(op.key)
        if op.remove:
            if op.key in current:
                out.append(_record(key, op.key, 0.0, remove=True))
            continue
        if not (math.isfinite(op.value) and op.value > 0):
            raise InvalidRequestError(
                f"quota {op.key} must be a finite number above 0, not {op.value}: to lift it, "
                "remove it"
            )
        if current.get(op.key) != op.value:
            out.append(_record(key, op.key, op.value, remove=False))
    return out


def _record(key: QuotaEntityKey, name: str, value: float, *, remove: bool) -> MetadataRecord:
    return MetadataRecord(
        client_quota=ClientQuotaRecord(
            entity=quota_entity_proto(key), key=name, value=value, remove=remove
        )
    )


def _describe(key: QuotaEntityKey) -> str:
    return ", ".join(f"{kind}={'<default>' if name is None else name}" for kind, name in key)


def describe_client_quotas(
    image: MetadataImage, request: DescribeClientQuotasRequest
) -> DescribeClientQuotasResponse:
    """The entities matching every filter component (and, with ``strict``, having no other
    component types), with their quotas."""
    try:
        _check_filter(request.components)
    except RaftkaError as e:
        return DescribeClientQuotasResponse(error_code=e.code, error_message=e.message)
    wanted_types = {c.entity_type for c in request.components}
    response = DescribeClientQuotasResponse(error_code=ErrorCode.NONE)
    quotas = image.security.quotas
    for key in sorted(quotas, key=_sort_key):
        names = dict(key)
        if request.strict and set(names) != wanted_types:
            continue
        if all(_matches(c, names) for c in request.components):
            response.entries.append(
                ClientQuotaEntry(entity=quota_entity_proto(key), values=dict(quotas[key]))
            )
    return response


def _check_filter(components: Sequence[ClientQuotaFilterComponent]) -> None:
    types = [c.entity_type for c in components]
    for c in components:
        if c.entity_type not in QUOTA_ENTITY_TYPES:
            raise InvalidRequestError(
                f"unknown quota entity type {c.entity_type!r} in the filter: use 'user' or "
                "'client-id'"
            )
        if types.count(c.entity_type) > 1:
            raise InvalidRequestError(
                f"the filter names {c.entity_type!r} more than once: at most one component per type"
            )
        if c.match_type == CLIENT_QUOTA_MATCH_EXACT and not c.match:
            raise InvalidRequestError(
                f"the {c.entity_type} filter matches an exact name but gives none: set match, "
                "or match the default or any"
            )
        if c.match_type not in (
            CLIENT_QUOTA_MATCH_EXACT,
            CLIENT_QUOTA_MATCH_DEFAULT,
            CLIENT_QUOTA_MATCH_ANY,
        ):
            raise InvalidRequestError(f"unknown match type {c.match_type} in the filter")


def _matches(c: ClientQuotaFilterComponent, names: dict[str, str | None]) -> bool:
    if c.entity_type not in names:
        return False
    name = names[c.entity_type]
    if c.match_type == CLIENT_QUOTA_MATCH_EXACT:
        return name == c.match
    if c.match_type == CLIENT_QUOTA_MATCH_DEFAULT:
        return name is None
    return True  # ANY: any name or the default


def _sort_key(key: QuotaEntityKey) -> tuple[tuple[str, bool, str], ...]:
    return tuple((kind, name is not None, name or "") for kind, name in key)
