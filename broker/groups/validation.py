"""Checks of requests' fields that need no state: each failure names the field and the rule."""

from __future__ import annotations

import re
from functools import lru_cache

from raftka.broker.groups.api import GroupConfig
from raftka.broker.groups.assignors import ASSIGNORS
from raftka.common.errors import InvalidRequestError, RaftkaError
from raftka.common.group_errors import (
    InvalidGroupIdError,
    InvalidRegularExpressionError,
    UnsupportedAssignorError,
)
from raftka.v1 import groups_pb2 as gpb

MAX_ID_BYTES = 249  # group, member, instance and rack ids, topic names
MAX_ITEMS = 10_000  # topics in a subscription, partitions in a request
MAX_REGEX_CHARS = 1_000


def check_group_id(group_id: str) -> None:
    size = len(group_id.encode())
    if size == 0 or size > MAX_ID_BYTES:
        raise InvalidGroupIdError(
            f"group id {group_id[:60]!r} is {size} bytes: it must be 1 to {MAX_ID_BYTES} bytes"
        )


def _check_id(value: str, field: str, *, may_be_empty: bool = False) -> None:
    size = len(value.encode())
    if (size == 0 and not may_be_empty) or size > MAX_ID_BYTES:
        raise InvalidRequestError(f"{field} is {size} bytes: it must be 1 to {MAX_ID_BYTES} bytes")


@lru_cache(maxsize=1024)
def compile_regex(pattern: str) -> re.Pattern[str]:
    """The subscription regex, compiled (InvalidRegularExpressionError when it does not)."""
    try:
        return re.compile(pattern)
    except re.error as e:
        raise InvalidRegularExpressionError(
            f"subscribed_topic_regex {pattern[:100]!r} does not compile: {e}"
        ) from e


def check_heartbeat(request: gpb.ConsumerGroupHeartbeatRequest, config: GroupConfig) -> None:
    """Raises the error of the first bad field (Kafka's ConsumerGroupHeartbeat validation)."""
    check_group_id(request.group_id)
    epoch = request.member_epoch
    if epoch < -2:
        raise InvalidRequestError(f"member_epoch {epoch} is invalid: use 0, -1, -2 or the epoch")
    _check_id(request.member_id, "member_id", may_be_empty=True)
    if epoch != 0 and not request.member_id:
        raise InvalidRequestError(f"member_id is required with member_epoch {epoch}")
    if request.HasField("instance_id"):
        _check_id(request.instance_id, "instance_id")
    elif epoch == -2:
        raise InvalidRequestError("instance_id is required with member_epoch -2 (static leave)")
    if request.HasField("rack_id"):
        _check_id(request.rack_id, "rack_id")
    if request.HasField("rebalance_timeout_ms"):
        if request.rebalance_timeout_ms <= 0:
            raise InvalidRequestError(
                f"rebalance_timeout_ms {request.rebalance_timeout_ms} must be positive"
            )
    elif epoch == 0:
        raise InvalidRequestError("rebalance_timeout_ms is required to join (member_epoch 0)")
    if request.HasField("session_timeout_ms") and not (
        config.min_session_timeout_ms <= request.session_timeout_ms <= config.max_session_timeout_ms
    ):
        raise InvalidRequestError(
            f"session_timeout_ms {request.session_timeout_ms} is outside "
            f"{config.min_session_timeout_ms}..{config.max_session_timeout_ms}"
        )
    if not request.subscription_set and request.subscribed_topic_names:
        raise InvalidRequestError(
            "subscribed_topic_names is given without subscription_set: set it to true"
        )
    if (
        epoch == 0
        and not request.subscription_set
        and not request.HasField("subscribed_topic_regex")
    ):
        raise InvalidRequestError(
            "subscribed_topic_names (with subscription_set) or subscribed_topic_regex is "
            "required to join (member_epoch 0)"
        )
    if len(request.subscribed_topic_names) > MAX_ITEMS:
        raise InvalidRequestError(
            f"subscribed_topic_names has {len(request.subscribed_topic_names)} topics: "
            f"at most {MAX_ITEMS}"
        )
    for name in request.subscribed_topic_names:
        _check_id(name, "a name in subscribed_topic_names")
    if request.HasField("subscribed_topic_regex"):
        if len(request.subscribed_topic_regex) > MAX_REGEX_CHARS:
            raise InvalidRequestError(
                f"subscribed_topic_regex has {len(request.subscribed_topic_regex)} characters: "
                f"at most {MAX_REGEX_CHARS}"
            )
        if request.subscribed_topic_regex:
            compile_regex(request.subscribed_topic_regex)
    if request.HasField("server_assignor") and request.server_assignor not in ASSIGNORS:
        raise UnsupportedAssignorError(
            f"server_assignor {request.server_assignor[:60]!r} is not one of "
            f"{', '.join(sorted(ASSIGNORS))}"
        )
    _check_owned(request, epoch)


def _check_owned(request: gpb.ConsumerGroupHeartbeatRequest, epoch: int) -> None:
    if not request.owned_partitions_set:
        if request.owned_partitions:
            raise InvalidRequestError(
                "owned_partitions is given without owned_partitions_set: set it to true"
            )
        return
    total = 0
    for item in request.owned_partitions:
        _check_id(item.topic, "a topic in owned_partitions")
        total += len(item.partitions)
        if any(p < 0 for p in item.partitions):
            raise InvalidRequestError(f"owned_partitions of {item.topic!r}: a negative partition")
    if total > MAX_ITEMS * 10:
        raise InvalidRequestError(f"owned_partitions has {total} partitions: too many")
    if epoch == 0 and total:
        raise InvalidRequestError("owned_partitions must be empty when joining (member_epoch 0)")


def error_fields(error: RaftkaError) -> tuple[int, str]:
    return int(error.code), str(error)
