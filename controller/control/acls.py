"""ACLs on the active controller: CreateAcls, DeleteAcls (records) and DescribeAcls (a read).

An ACL is stored as an AccessControlEntryRecord with a random id and removed by id, so every
node replays the same set (and snapshots keep it). Creating an ACL that already exists answers
the existing id and writes nothing (Kafka does the same), so a retried CreateAcls is harmless;
the same ACL twice in one request is written once. An ACL matched by several filters of one
DeleteAcls is removed once and reported under the first of them.
"""

from __future__ import annotations

import random

from raftka.common.errors import RaftkaError
from raftka.common.ids import random_resource_id
from raftka.common.metadata.image import MetadataImage
from raftka.common.security.acl_filters import AclFilter, acl_sort_key, validate_acl
from raftka.common.security.model import Acl
from raftka.controller.control.result import ControllerResult
from raftka.v1.metadata_pb2 import (
    AccessControlEntryRecord,
    MetadataRecord,
    RemoveAccessControlEntryRecord,
)
from raftka.v1.security_pb2 import (
    AclCreationResult,
    AclDeletionResult,
    AclDescription,
    CreateAclsRequest,
    CreateAclsResponse,
    DeleteAclsRequest,
    DeleteAclsResponse,
    DescribeAclsRequest,
    DescribeAclsResponse,
)


def _description(acl_id: str, acl: Acl) -> AclDescription:
    return AclDescription(id=acl_id, binding=acl.to_proto())


def create_acls(
    image: MetadataImage, request: CreateAclsRequest, rng: random.Random
) -> ControllerResult[CreateAclsResponse]:
    """One result per creation: its id (new or existing) or why it was refused."""
    existing = image.security.acls
    ids_by_acl = {acl: acl_id for acl_id, acl in existing.items()}
    used_ids = set(existing)
    records: list[MetadataRecord] = []
    response = CreateAclsResponse()
    for binding in request.creations:
        try:
            acl = validate_acl(binding)
        except RaftkaError as e:
            response.results.append(AclCreationResult(error_code=e.code, error_message=e.message))
            continue
        acl_id = ids_by_acl.get(acl)
        if acl_id is None:
            acl_id = _new_acl_id(rng, used_ids)
            ids_by_acl[acl] = acl_id
            used_ids.add(acl_id)
            records.append(
                MetadataRecord(
                    access_control_entry=AccessControlEntryRecord(id=acl_id, binding=acl.to_proto())
                )
            )
        response.results.append(AclCreationResult(id=acl_id))
    return ControllerResult(tuple(records), response)


def _new_acl_id(rng: random.Random, used: set[str]) -> str:
    """A random id not used by an ACL of the image or of this request; never starting with
    "-", so it can be passed on a command line."""
    while True:
        acl_id = random_resource_id(rng)
        if not acl_id.startswith("-") and acl_id not in used:
            return acl_id


def delete_acls(
    image: MetadataImage, request: DeleteAclsRequest
) -> ControllerResult[DeleteAclsResponse]:
    """One result per filter: the ACLs it removed (sorted), or why the filter was refused."""
    remaining = dict(image.security.acls)
    records: list[MetadataRecord] = []
    response = DeleteAclsResponse()
    for wire_filter in request.filters:
        try:
            acl_filter = AclFilter.from_proto(wire_filter)
        except RaftkaError as e:
            response.results.append(AclDeletionResult(error_code=e.code, error_message=e.message))
            continue
        matched = sorted(
            ((i, a) for i, a in remaining.items() if acl_filter.matches(a)),
            key=lambda item: (acl_sort_key(item[1]), item[0]),
        )
        result = AclDeletionResult()
        for acl_id, acl in matched:
            del remaining[acl_id]
            records.append(
                MetadataRecord(
                    remove_access_control_entry=RemoveAccessControlEntryRecord(id=acl_id)
                )
            )
            result.deleted.append(_description(acl_id, acl))
        response.results.append(result)
    return ControllerResult(tuple(records), response)


def describe_acls(image: MetadataImage, request: DescribeAclsRequest) -> DescribeAclsResponse:
    """The ACLs the filter selects, in ``acl_sort_key`` order (then by id)."""
    try:
        acl_filter = AclFilter.from_proto(request.filter)
    except RaftkaError as e:
        return DescribeAclsResponse(error_code=e.code, error_message=e.message)
    matched = sorted(
        ((i, a) for i, a in image.security.acls.items() if acl_filter.matches(a)),
        key=lambda item: (acl_sort_key(item[1]), item[0]),
    )
    return DescribeAclsResponse(acls=[_description(i, a) for i, a in matched])
