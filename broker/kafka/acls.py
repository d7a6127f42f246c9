"""CreateAcls / DescribeAcls / DeleteAcls (v1-v3) and DescribeUserScramCredentials /
AlterUserScramCredentials (v0), forwarded to the controllers' AclService and UserService.

Kafka's numbers for resource types, pattern types, operations, permissions and SCRAM
mechanisms are Raftka's, and Kafka's clients already send what the UserService takes for a
credential (salt, iterations and the salted password: never the password), so each request
maps field for field. The caller's permission is checked here, from the same table the
controllers' interceptor uses (``CLUSTER_ADMIN_METHODS``: ALTER or DESCRIBE on the cluster),
because the controllers see this broker, a node, as the caller; a refusal is
CLUSTER_AUTHORIZATION_FAILED for each item (or the whole answer where Kafka has one code).
On a cluster without the authorizer the controllers answer SECURITY_DISABLED, as Kafka does."""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode

from raftka.broker.kafka.backend import KafkaBackend
from raftka.broker.kafka.dispatch import Api, RequestContext
from raftka.broker.kafka.schema import (
    NO_THROTTLE,
    build,
    error_code,
    error_of,
    nested,
    response_type,
)
from raftka.common.errors import RaftkaError
from raftka.common.security.inter_node import CLUSTER_ADMIN_METHODS
from raftka.common.security.model import CLUSTER_RESOURCE_NAME, RESOURCE_CLUSTER
from raftka.v1 import common_pb2 as cpb
from raftka.v1 import security_pb2 as spb
from raftka.v1.security_pb2_grpc import AclServiceStub, UserServiceStub

DESCRIBE_ACLS_KEY = 29
CREATE_ACLS_KEY = 30
DELETE_ACLS_KEY = 31
DESCRIBE_USER_SCRAM_CREDENTIALS_KEY = 50
ALTER_USER_SCRAM_CREDENTIALS_KEY = 51


def _denial(backend: KafkaBackend, method: str) -> RaftkaError | None:
    """The refusal of ``/raftka.v1.<method>`` for the current caller (None: allowed)."""
    operation = CLUSTER_ADMIN_METHODS[f"/raftka.v1.{method}"]
    return backend.guard.denial(operation, RESOURCE_CLUSTER, CLUSTER_RESOURCE_NAME)


async def _forward(
    backend: KafkaBackend,
    method: str,
    stub_type: type[Any],
    call: Any,
    *,
    any_controller: bool = False,
) -> Any:
    """The controllers' answer to ``/raftka.v1.<method>`` (``call(stub, timeout)``), once
    the caller's permission is checked here; raises the refusal or the call's error."""
    denied = _denial(backend, method)
    if denied is not None:
        raise denied
    return await backend.controller.call_service(stub_type, call, any_controller=any_controller)


def _filter(f: Any) -> cpb.AclBindingFilter:
    """Kafka's ACL filter fields (DescribeAcls' request, a DeleteAcls filter) as Raftka's."""
    return cpb.AclBindingFilter(
        resource_type=int(f.resource_type_filter),  # type: ignore[arg-type]
        resource_name=f.resource_name_filter or "",
        pattern_type=int(f.pattern_type_filter),  # type: ignore[arg-type]
        principal=f.principal_filter or "",
        host=f.host_filter or "",
        operation=int(f.operation),  # type: ignore[arg-type]
        permission_type=int(f.permission_type),  # type: ignore[arg-type]
    )


def _binding_fields(b: cpb.AclBinding) -> dict[str, Any]:
    return {
        "resource_type": int(b.resource_type),
        "resource_name": b.resource_name,
        "pattern_type": int(b.pattern_type),
        "principal": b.principal,
        "host": b.host,
        "operation": int(b.operation),
        "permission_type": int(b.permission_type),
    }


class CreateAclsHandler:
    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    async def __call__(self, request: Any, context: RequestContext) -> Any:
        answer_type = response_type(CREATE_ACLS_KEY, context.api_version)
        result_type = nested(answer_type, "AclCreationResult")

        def results(codes: list[tuple[ErrorCode, str | None]]) -> Any:
            return build(
                answer_type,
                throttle_time=NO_THROTTLE,
                results=tuple(build(result_type, error_code=c, error_message=m) for c, m in codes),
            )

        count = len(request.creations)
        asked = spb.CreateAclsRequest(
            creations=[
                cpb.AclBinding(
                    resource_type=int(c.resource_type),  # type: ignore[arg-type]
                    resource_name=c.resource_name,
                    pattern_type=int(c.resource_pattern_type),  # type: ignore[arg-type]
                    principal=c.principal,
                    host=c.host,
                    operation=int(c.operation),  # type: ignore[arg-type]
                    permission_type=int(c.permission_type),  # type: ignore[arg-type]
                )
                for c in request.creations
            ]
        )
        try:
            answer = await _forward(
                self._backend,
                "AclService/CreateAcls",
                AclServiceStub,
                lambda stub, t: stub.CreateAcls(asked, timeout=t),
            )
        except RaftkaError as e:
            return results([(error_of(e), e.message)] * count)
        return results(
            [(error_code(r.error_code), r.error_message or None) for r in answer.results]
        )


class DescribeAclsHandler:
    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    async def __call__(self, request: Any, context: RequestContext) -> Any:
        answer_type = response_type(DESCRIBE_ACLS_KEY, context.api_version)
        resource_type = nested(answer_type, "DescribeAclsResource")
        acl_type = nested(answer_type, "AclDescription")

        def failed(e: RaftkaError) -> Any:
            return build(
                answer_type,
                throttle_time=NO_THROTTLE,
                error_code=error_of(e),
                error_message=e.message,
                resources=(),
            )

        asked = spb.DescribeAclsRequest(filter=_filter(request))
        try:
            answer = await _forward(
                self._backend,
                "AclService/DescribeAcls",
                AclServiceStub,
                lambda stub, t: stub.DescribeAcls(asked, timeout=t),
                any_controller=True,
            )
        except RaftkaError as e:
            return failed(e)
        grouped: dict[tuple[int, str, int], list[Any]] = {}
        for described in answer.acls:
            b = described.binding
            grouped.setdefault(
                (int(b.resource_type), b.resource_name, int(b.pattern_type)), []
            ).append(
                acl_type(
                    principal=b.principal,
                    host=b.host,
                    operation=int(b.operation),
                    permission_type=int(b.permission_type),
                )
            )
        return build(
            answer_type,
            throttle_time=NO_THROTTLE,
            error_code=error_code(answer.error_code),
            error_message=answer.error_message or None,
            resources=tuple(
                build(
                    resource_type,
                    resource_type=kind,
                    resource_name=name,
                    pattern_type=pattern,
                    acls=tuple(acls),
                )
                for (kind, name, pattern), acls in grouped.items()
            ),
        )


class DeleteAclsHandler:
    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    async def __call__(self, request: Any, context: RequestContext) -> Any:
        answer_type = response_type(DELETE_ACLS_KEY, context.api_version)
        result_type = nested(answer_type, "DeleteAclsFilterResult")
        matching_type = nested(answer_type, "DeleteAclsMatchingAcl")

        def all_failed(e: RaftkaError) -> Any:
            failed = build(
                result_type, error_code=error_of(e), error_message=e.message, matching_acls=()
            )
            return build(
                answer_type,
                throttle_time=NO_THROTTLE,
                filter_results=(failed,) * len(request.filters),
            )

        asked = spb.DeleteAclsRequest(filters=[_filter(f) for f in request.filters])
        try:
            answer = await _forward(
                self._backend,
                "AclService/DeleteAcls",
                AclServiceStub,
                lambda stub, t: stub.DeleteAcls(asked, timeout=t),
            )
        except RaftkaError as e:
            return all_failed(e)
        return build(
            answer_type,
            throttle_time=NO_THROTTLE,
            filter_results=tuple(
                build(
                    result_type,
                    error_code=error_code(r.error_code),
                    error_message=r.error_message or None,
                    matching_acls=tuple(
                        build(
                            matching_type,
                            error_code=ErrorCode.none,
                            error_message=None,
                            **_binding_fields(d.binding),
                        )
                        for d in r.deleted
                    ),
                )
                for r in answer.results
            ),
        )


class DescribeUserScramCredentialsHandler:
    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    async def __call__(self, request: Any, context: RequestContext) -> Any:
        answer_type = response_type(DESCRIBE_USER_SCRAM_CREDENTIALS_KEY, context.api_version)
        result_type = nested(answer_type, "DescribeUserScramCredentialsResult")
        info_type = nested(answer_type, "CredentialInfo")

        def failed(e: RaftkaError) -> Any:
            return build(
                answer_type,
                throttle_time=NO_THROTTLE,
                error_code=error_of(e),
                error_message=e.message,
                results=(),
            )

        asked = spb.DescribeUserScramCredentialsRequest(names=[u.name for u in request.users or ()])
        try:
            answer = await _forward(
                self._backend,
                "UserService/DescribeUserScramCredentials",
                UserServiceStub,
                lambda stub, t: stub.DescribeUserScramCredentials(asked, timeout=t),
                any_controller=True,
            )
        except RaftkaError as e:
            return failed(e)
        return build(
            answer_type,
            throttle_time=NO_THROTTLE,
            error_code=ErrorCode.none,
            error_message=None,
            results=tuple(
                build(
                    result_type,
                    user=r.name,
                    error_code=error_code(r.error_code),
                    error_message=r.error_message or None,
                    credential_infos=tuple(
                        info_type(mechanism=int(c.mechanism), iterations=c.iterations)
                        for c in r.credentials
                    ),
                )
                for r in answer.results
            ),
        )


class AlterUserScramCredentialsHandler:
    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    async def __call__(self, request: Any, context: RequestContext) -> Any:
        answer_type = response_type(ALTER_USER_SCRAM_CREDENTIALS_KEY, context.api_version)
        result_type = nested(answer_type, "AlterUserScramCredentialsResult")
        users = list(
            dict.fromkeys(
                [*(u.name for u in request.upsertions), *(d.name for d in request.deletions)]
            )
        )

        def all_failed(e: RaftkaError) -> Any:
            return build(
                answer_type,
                throttle_time=NO_THROTTLE,
                results=tuple(
                    build(result_type, user=u, error_code=error_of(e), error_message=e.message)
                    for u in users
                ),
            )

        asked = spb.AlterUserScramCredentialsRequest(
            upsertions=[
                spb.ScramCredentialUpsertion(
                    name=u.name,
                    mechanism=int(u.mechanism),  # type: ignore[arg-type]
                    iterations=u.iterations,
                    salt=u.salt,
                    salted_password=u.salted_password,
                )
                for u in request.upsertions
            ],
            deletions=[
                spb.ScramCredentialDeletion(
                    name=d.name,
                    mechanism=int(d.mechanism),  # type: ignore[arg-type]
                )
                for d in request.deletions
            ],
        )
        try:
            answer = await _forward(
                self._backend,
                "UserService/AlterUserScramCredentials",
                UserServiceStub,
                lambda stub, t: stub.AlterUserScramCredentials(asked, timeout=t),
            )
        except RaftkaError as e:
            return all_failed(e)
        return build(
            answer_type,
            throttle_time=NO_THROTTLE,
            results=tuple(
                build(
                    result_type,
                    user=r.name,
                    error_code=error_code(r.error_code),
                    error_message=r.error_message or None,
                )
                for r in answer.results
            ),
        )


def security_admin_apis(backend: KafkaBackend) -> list[Api]:
    """The ACL and credential APIs, at the versions served."""
    return [
        Api(DESCRIBE_ACLS_KEY, "DescribeAcls", 1, 3, DescribeAclsHandler(backend)),
        Api(CREATE_ACLS_KEY, "CreateAcls", 1, 3, CreateAclsHandler(backend)),
        Api(DELETE_ACLS_KEY, "DeleteAcls", 1, 3, DeleteAclsHandler(backend)),
        Api(
            DESCRIBE_USER_SCRAM_CREDENTIALS_KEY,
            "DescribeUserScramCredentials",
            0,
            0,
            DescribeUserScramCredentialsHandler(backend),
        ),
        Api(
            ALTER_USER_SCRAM_CREDENTIALS_KEY,
            "AlterUserScramCredentials",
            0,
            0,
            AlterUserScramCredentialsHandler(backend),
        ),
    ]
