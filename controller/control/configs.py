"""Topic configs on the active controller: DescribeConfigs and AlterConfigs.

Only TOPIC resources are supported; any other resource type gets a per-resource
INVALID_REQUEST result naming the supported type.
"""

from __future__ import annotations

from collections import Counter

from raftka.common.errors import (
    InvalidConfigError,
    InvalidRequestError,
    RaftkaError,
    UnknownTopicOrPartitionError,
)
from raftka.common.metadata.image import MetadataImage
from raftka.common.metadata.records import topic_config_record
from raftka.common.metadata.topic_configs import (
    TOPIC_CONFIGS,
    ConfigDef,
    ConfigType,
    check_min_insync_replicas,
    config_def,
    validate_topic_configs,
)
from raftka.controller.control.result import ControllerResult
from raftka.v1.common_pb2 import ConfigEntry, ConfigSource, ErrorCode, ResourceType
from raftka.v1.controller_pb2 import (
    AlterConfigOp,
    AlterConfigResource,
    AlterConfigsRequest,
    AlterConfigsResponse,
    ConfigResourceResult,
    DescribeConfigsRequest,
    DescribeConfigsResponse,
)
from raftka.v1.metadata_pb2 import MetadataRecord

_TOPIC = ResourceType.RESOURCE_TYPE_TOPIC


def describe_configs(
    image: MetadataImage, request: DescribeConfigsRequest
) -> DescribeConfigsResponse:
    """Every supported config of each topic (or the requested ones), with its source."""
    response = DescribeConfigsResponse()
    for resource in request.resources:
        result = ConfigResourceResult(type=resource.type, name=resource.name)
        try:
            _check_topic_resource(image, resource.type, resource.name)
            for name in resource.names:
                config_def(name)
            overrides = image.topic_configs(resource.name)
            for name in sorted(set(resource.names) or TOPIC_CONFIGS):
                definition = TOPIC_CONFIGS[name]
                value = overrides.get(name)
                result.entries.append(
                    ConfigEntry(
                        name=name,
                        value=definition.default if value is None else value,
                        source=(
                            ConfigSource.CONFIG_SOURCE_DEFAULT
                            if value is None
                            else ConfigSource.CONFIG_SOURCE_TOPIC
                        ),
                        read_only=False,
                        documentation=definition.doc,
                    )
                )
        except RaftkaError as e:
            del result.entries[:]
            result.error_code = e.code
            result.error_message = e.message
        response.results.append(result)
    return response


def alter_configs(
    image: MetadataImage, request: AlterConfigsRequest
) -> ControllerResult[AlterConfigsResponse]:
    """Applies SET/DELETE/APPEND/SUBTRACT ops per topic; the resulting config set is validated as a whole and
    only real changes produce ConfigRecords."""
    counts = Counter((resource.type, resource.name) for resource in request.resources)
    records: list[MetadataRecord] = []
    response = AlterConfigsResponse()
    for resource in request.resources:
        result = ConfigResourceResult(type=resource.type, name=resource.name)
        try:
            if counts[(resource.type, resource.name)] > 1:
                raise InvalidRequestError(
                    f"resource {resource.name!r} appears {counts[(resource.type, resource.name)]} "
                    "times in the request"
                )
            changes = _plan_changes(image, resource)
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


def _plan_changes(image: MetadataImage, resource: AlterConfigResource) -> list[MetadataRecord]:
    _check_topic_resource(image, resource.type, resource.name)
    current = dict(image.topic_configs(resource.name))
    wanted = dict(current)
    seen: set[str] = set()
    for op in resource.ops:
        if op.name in seen:
            raise InvalidRequestError(f"config {op.name!r} has more than one op in the request")
        seen.add(op.name)
        definition = config_def(op.name)
        if op.op == AlterConfigOp.SET:
            wanted[op.name] = op.value
        elif op.op == AlterConfigOp.DELETE:
            wanted.pop(op.name, None)
        elif op.op in (AlterConfigOp.APPEND, AlterConfigOp.SUBTRACT):
            wanted[op.name] = _list_change(definition, current.get(op.name), op)
        else:
            raise InvalidRequestError(
                f"config {op.name!r} has unknown op {op.op}; allowed: SET (0), DELETE (1), "
                "APPEND (2), SUBTRACT (3)"
            )
    validated = validate_topic_configs(wanted)
    topic = image.topic(resource.name)
    if topic is not None and "min.insync.replicas" in seen:
        check_min_insync_replicas(validated, topic.replication_factor)
    return [
        topic_config_record(resource.name, name, validated.get(name))
        for name in sorted(set(current) | set(validated))
        if current.get(name) != validated.get(name)
    ]


def _list_change(definition: ConfigDef, current: str | None, op: AlterConfigOp) -> str:
    """APPEND / SUBTRACT: the items of ``op.value`` added to or removed from the current
    value (the topic's, else the default), as Kafka's IncrementalAlterConfigs does."""
    verb = AlterConfigOp.Op.Name(op.op)
    if definition.type is not ConfigType.LIST:
        raise InvalidConfigError(
            f"cannot {verb} to topic config {definition.name!r}: it is not a list "
            f"({definition.type.value}); use SET"
        )
    items = _items(definition.default if current is None else current)
    changes = _items(op.value)
    if op.op == AlterConfigOp.APPEND:
        return ",".join(items + [c for c in dict.fromkeys(changes) if c not in items])
    return ",".join(i for i in items if i not in changes)


def _items(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _check_topic_resource(
    image: MetadataImage, resource_type: ResourceType.ValueType, name: str
) -> None:
    if resource_type != _TOPIC:
        label = (
            ResourceType.Name(resource_type)
            if resource_type in ResourceType.values()
            else str(resource_type)
        )
        raise InvalidRequestError(
            f"resource type {label} is not supported for configs; the only supported type is "
            "RESOURCE_TYPE_TOPIC"
        )
    if image.topic(name) is None:
        raise UnknownTopicOrPartitionError(f"topic {name!r} does not exist")
