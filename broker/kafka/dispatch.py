"""Which APIs at which versions the listener serves, and ApiVersions, which tells clients.

Only what is implemented is advertised: a client never picks an API or a version this table
lacks. A request for one anyway closes the connection (as Kafka does), except ApiVersions at a
newer version than served, which is answered at v0 with UNSUPPORTED_VERSION and the table, so
the client can retry at a version both know (KIP-511)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kio.schema.errors import ErrorCode

from raftka.broker.kafka.schema import NO_THROTTLE, build, nested, response_type

API_VERSIONS_KEY = 18


@dataclass(frozen=True, slots=True)
class RequestContext:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str
    peer: str
    zero_copy: bool = False
    """The answer may carry file regions (:class:`~raftka.broker.kafka.regions.WithRegions`):
    the connection sends them with ``sendfile``."""


Handler = Callable[[Any, RequestContext], Awaitable[Any | None]]
"""Serves one request: the response entity, or None when none is sent (Produce with acks=0)."""


@dataclass(frozen=True, slots=True)
class Api:
    key: int
    name: str
    min_version: int
    max_version: int
    handle: Handler


class ApiTable:
    def __init__(self, apis: Iterable[Api]) -> None:
        self._apis = {api.key: api for api in apis}
        self._apis[API_VERSIONS_KEY] = Api(API_VERSIONS_KEY, "ApiVersions", 0, 4, self._versions)

    def find(self, key: int, version: int) -> Api | None:
        api = self._apis.get(key)
        if api is None or not api.min_version <= version <= api.max_version:
            return None
        return api

    def known(self, key: int) -> Api | None:
        return self._apis.get(key)

    def unsupported_api_versions(self) -> Any:
        """ApiVersions v0's answer to a version it does not serve (KIP-511)."""
        return self._answer(0, ErrorCode.unsupported_version)

    async def _versions(self, _request: Any, context: RequestContext) -> Any:
        return self._answer(context.api_version, ErrorCode.none)

    def _answer(self, version: int, error: ErrorCode) -> Any:
        answer_type = response_type(API_VERSIONS_KEY, version)
        entry = nested(answer_type, "ApiVersion")
        keys = tuple(
            entry(api_key=a.key, min_version=a.min_version, max_version=a.max_version)
            for a in sorted(self._apis.values(), key=lambda a: a.key)
        )
        return build(answer_type, error_code=error, api_keys=keys, throttle_time=NO_THROTTLE)
