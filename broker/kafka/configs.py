"""DescribeConfigs (v1-v4), IncrementalAlterConfigs (v0-v1) and AlterConfigs (v0-v2).

TOPIC resources go to the active controller, which reads and validates topic configs for
Raftka's own admin client too: IncrementalAlterConfigs' SET / DELETE / APPEND / SUBTRACT are
its ops (the same numbers), and the legacy AlterConfigs, which replaces a topic's whole set,
becomes a SET of each config given and a DELETE of every other one, applied together. A BROKER
resource is this broker's own static settings (broker_configs.py): described here, and
read-only (INVALID_REQUEST to alter). The caller needs DESCRIBE_CONFIGS / ALTER_CONFIGS on the
topic, or on the cluster for a BROKER resource, as with Kafka. configuration_keys are read as
Kafka does: null for every config, else those named (unknown names left out)."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kio.schema.errors import ErrorCode

from raftka.broker.kafka.backend import KafkaBackend
from raftka.broker.kafka.bounds import items_refusal
from raftka.broker.kafka.broker_configs import (
    KAFKA_CONFIG_TYPES,
    SOURCE_DEFAULT,
    SOURCE_STATIC_BROKER,
    SOURCE_TOPIC,
    broker_config_entries,
)
from raftka.broker.kafka.dispatch import RequestContext
from raftka.broker.kafka.schema import (
    NO_THROTTLE,
    build,
    error_code,
    error_of,
    nested,
    response_type,
)
from raftka.common.errors import InvalidRequestError, RaftkaError
from raftka.common.metadata.topic_configs import TOPIC_CONFIGS
from raftka.common.security.model import (
    CLUSTER_RESOURCE_NAME,
    OP_ALTER_CONFIGS,
    OP_DESCRIBE_CONFIGS,
    RESOURCE_CLUSTER,
    RESOURCE_TOPIC,
)
from raftka.v1 import common_pb2 as cmn
from raftka.v1 import controller_pb2 as cpb

DESCRIBE_CONFIGS_KEY = 32
ALTER_CONFIGS_KEY = 33
INCREMENTAL_ALTER_CONFIGS_KEY = 44

TOPIC_RESOURCE = 2
"""Kafka's ConfigResource.Type numbers."""
BROKER_RESOURCE = 4

_SOURCES = {
    cmn.CONFIG_SOURCE_TOPIC: SOURCE_TOPIC,
    cmn.CONFIG_SOURCE_STATIC: SOURCE_STATIC_BROKER,
    cmn.CONFIG_SOURCE_DEFAULT: SOURCE_DEFAULT,
}

Outcome = tuple[ErrorCode, str | None]
_OK: Outcome = (ErrorCode.none, None)


@dataclass(frozen=True, slots=True)
class Entry:
    """One config as DescribeConfigs reports it, whatever the resource."""

    name: str
    value: str
    source: int
    read_only: bool
    config_type: int
    documentation: str | None
    synonyms: tuple[tuple[str, str, int], ...]


def resource_refusal(
    backend: KafkaBackend, resource_type: int, name: str, operation: int
) -> RaftkaError | None:
    """Why this resource gets no answer but an error here (an unsupported type, another
    broker's settings, a refused caller); None when it is served."""
    if resource_type == TOPIC_RESOURCE:
        return backend.guard.denial(operation, RESOURCE_TOPIC, name)
    if resource_type != BROKER_RESOURCE:
        return InvalidRequestError(
            f"config resource type {resource_type} is not supported: TOPIC (2) and BROKER (4) are"
        )
    if name not in ("", str(backend.broker_id)):
        return InvalidRequestError(
            f"BROKER resource {name!r} is not this broker ({backend.broker_id}): send it to "
            "that broker, or name this one"
        )
    return backend.guard.denial(operation, RESOURCE_CLUSTER, CLUSTER_RESOURCE_NAME)


def keys_allow(keys: Sequence[str] | None, name: str) -> bool:
    """Kafka's reading of configuration_keys: null asks for every config, a list for those
    named (unknown names are left out, an empty list asks for none)."""
    return keys is None or name in keys


def topic_entry(entry: cmn.ConfigEntry) -> Entry:
    source = _SOURCES.get(entry.source, SOURCE_DEFAULT)
    definition = TOPIC_CONFIGS.get(entry.name)
    synonyms = [(entry.name, entry.value, source)]
    if source == SOURCE_TOPIC and definition is not None:
        synonyms.append((entry.name, definition.default, SOURCE_DEFAULT))
    return Entry(
        name=entry.name,
        value=entry.value,
        source=source,
        read_only=entry.read_only,
        config_type=KAFKA_CONFIG_TYPES[definition.type] if definition is not None else 0,
        documentation=entry.documentation or None,
        synonyms=tuple(synonyms),
    )


def broker_entries(backend: KafkaBackend, name: str, keys: Sequence[str] | None) -> list[Entry]:
    """This broker's settings (those of ``keys``, all when None); an empty resource name
    asks for cluster-wide dynamic defaults, of which Raftka has none."""
    if name == "" or backend.config is None:
        return []
    return [
        Entry(
            name=e.name,
            value=e.value,
            source=e.source,
            read_only=True,
            config_type=KAFKA_CONFIG_TYPES[e.config_type],
            documentation=None,
            synonyms=((e.name, e.value, e.source),),
        )
        for e in broker_config_entries(backend.config)
        if keys_allow(keys, e.name)
    ]


class DescribeConfigsHandler:
    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    async def __call__(self, request: Any, context: RequestContext) -> Any:
        answer_type = response_type(DESCRIBE_CONFIGS_KEY, context.api_version)
        resources = list(request.resources)
        answers: list[tuple[Outcome, list[Entry]]] = [(_OK, [])] * len(resources)
        forwarded: list[int] = []
        too_many = items_refusal(len(resources), "resources") or items_refusal(
            sum(len(r.configuration_keys or ()) for r in resources), "configuration_keys"
        )
        for i, r in enumerate(resources):
            refusal = too_many or resource_refusal(
                self._backend, r.resource_type, r.resource_name, OP_DESCRIBE_CONFIGS
            )
            if refusal is not None:
                answers[i] = ((error_of(refusal), refusal.message), [])
            elif r.resource_type == BROKER_RESOURCE:
                answers[i] = (
                    _OK,
                    broker_entries(self._backend, r.resource_name, r.configuration_keys),
                )
            else:
                forwarded.append(i)
        if forwarded:
            asked = [
                cpb.ConfigResource(
                    type=cmn.RESOURCE_TYPE_TOPIC,
                    name=resources[i].resource_name,
                    names=[k for k in resources[i].configuration_keys or () if k in TOPIC_CONFIGS],
                )
                for i in forwarded
            ]
            try:
                found = await self._backend.controller.describe_configs(asked)
                for i, result in zip(forwarded, found, strict=True):
                    answers[i] = (
                        (error_code(result.error_code), result.error_message or None)
                        if result.error_code
                        else _OK,
                        [
                            topic_entry(e)
                            for e in result.entries
                            if keys_allow(resources[i].configuration_keys, e.name)
                        ],
                    )
            except RaftkaError as e:
                for i in forwarded:
                    answers[i] = ((error_of(e), e.message), [])
        return build(
            answer_type,
            throttle_time=NO_THROTTLE,
            results=tuple(
                self._result(answer_type, request, r, outcome, entries)
                for r, (outcome, entries) in zip(resources, answers, strict=True)
            ),
        )

    @staticmethod
    def _result(
        answer_type: type[Any], request: Any, resource: Any, outcome: Outcome, entries: list[Entry]
    ) -> Any:
        entry_type = nested(answer_type, "DescribeConfigsResourceResult")
        synonym_type = nested(answer_type, "DescribeConfigsSynonym")
        synonyms = bool(getattr(request, "include_synonyms", False))
        documentation = bool(getattr(request, "include_documentation", False))
        return build(
            nested(answer_type, "DescribeConfigsResult"),
            error_code=outcome[0],
            error_message=outcome[1],
            resource_type=resource.resource_type,
            resource_name=resource.resource_name,
            configs=tuple(
                build(
                    entry_type,
                    name=e.name,
                    value=e.value,
                    read_only=e.read_only,
                    config_source=e.source,
                    is_sensitive=False,
                    synonyms=tuple(
                        synonym_type(name=n, value=v, source=s) for n, v, s in e.synonyms
                    )
                    if synonyms
                    else (),
                    config_type=e.config_type,
                    documentation=e.documentation if documentation else None,
                )
                for e in entries
            ),
        )


class _AlterHandler(abc.ABC):
    """What IncrementalAlterConfigs and AlterConfigs share: refusals, the forward of TOPIC
    resources to the controller, and the answer; each says how a resource becomes ops."""

    api_key = 0

    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    @abc.abstractmethod
    def ops(self, resource: Any) -> list[cpb.AlterConfigOp]:
        """The controller's ops for one resource of the request."""

    async def __call__(self, request: Any, context: RequestContext) -> Any:
        answer_type = response_type(self.api_key, context.api_version)
        resources = list(request.resources)
        outcomes: list[Outcome] = [_OK] * len(resources)
        forwarded: list[int] = []
        too_many = items_refusal(len(resources), "resources") or items_refusal(
            sum(len(r.configs) for r in resources), "configs"
        )
        for i, r in enumerate(resources):
            refusal = too_many or resource_refusal(
                self._backend, r.resource_type, r.resource_name, OP_ALTER_CONFIGS
            )
            if refusal is None and r.resource_type == BROKER_RESOURCE:
                refusal = InvalidRequestError(
                    "broker settings are static: set them in the [broker] table of the node's "
                    "config file and restart it"
                )
            if refusal is not None:
                outcomes[i] = (error_of(refusal), refusal.message)
            else:
                forwarded.append(i)
        if forwarded:
            asked = [
                cpb.AlterConfigResource(
                    type=cmn.RESOURCE_TYPE_TOPIC,
                    name=resources[i].resource_name,
                    ops=self.ops(resources[i]),
                )
                for i in forwarded
            ]
            try:
                done = await self._backend.controller.alter_configs(
                    asked, validate_only=request.validate_only
                )
                for i, result in zip(forwarded, done, strict=True):
                    outcomes[i] = (error_code(result.error_code), result.error_message or None)
            except RaftkaError as e:
                for i in forwarded:
                    outcomes[i] = (error_of(e), e.message)
        result_type = nested(answer_type, "AlterConfigsResourceResponse")
        return build(
            answer_type,
            throttle_time=NO_THROTTLE,
            responses=tuple(
                build(
                    result_type,
                    error_code=code,
                    error_message=message,
                    resource_type=r.resource_type,
                    resource_name=r.resource_name,
                )
                for r, (code, message) in zip(resources, outcomes, strict=True)
            ),
        )


class IncrementalAlterConfigsHandler(_AlterHandler):
    """SET (0), DELETE (1), APPEND (2), SUBTRACT (3): Kafka's numbers are the controller's."""

    api_key = INCREMENTAL_ALTER_CONFIGS_KEY

    def ops(self, resource: Any) -> list[cpb.AlterConfigOp]:
        return [
            cpb.AlterConfigOp(
                name=c.name,
                op=cpb.AlterConfigOp.Op.ValueType(int(c.config_operation)),
                value=c.value or "",
            )
            for c in resource.configs
        ]


class AlterConfigsHandler(_AlterHandler):
    """The legacy full replace: the configs given are set, every other one goes back to its
    default (a config given with a null value too)."""

    api_key = ALTER_CONFIGS_KEY

    def ops(self, resource: Any) -> list[cpb.AlterConfigOp]:
        given = [c for c in resource.configs if c.value is not None]
        named = {c.name for c in given}
        return [
            cpb.AlterConfigOp(name=c.name, op=cpb.AlterConfigOp.SET, value=c.value) for c in given
        ] + [
            cpb.AlterConfigOp(name=name, op=cpb.AlterConfigOp.DELETE)
            for name in TOPIC_CONFIGS
            if name not in named
        ]
