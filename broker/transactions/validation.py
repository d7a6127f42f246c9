"""Checks of requests' fields and of the coordinator's settings that need no state: each
failure names the field and the rule."""

from __future__ import annotations

from collections.abc import Sequence

from raftka.broker.transactions.api import TopicPartition, TxnConfig
from raftka.common.errors import InvalidConfigError, InvalidRequestError
from raftka.common.txn_errors import InvalidTransactionTimeoutError

MAX_ID_BYTES = 249  # transactional ids and topic names
MAX_PARTITIONS_PER_REQUEST = 10_000


def check_config(config: TxnConfig) -> None:
    if config.max_timeout_ms <= 0:
        raise InvalidConfigError(
            f"transaction max timeout {config.max_timeout_ms} ms: it must be positive"
        )
    if not 0 < config.default_timeout_ms <= config.max_timeout_ms:
        raise InvalidConfigError(
            f"transaction default timeout {config.default_timeout_ms} ms: it must be 1 to the "
            f"max timeout ({config.max_timeout_ms} ms)"
        )
    if config.id_expiration_ms <= 0 or config.max_partitions_per_txn <= 0:
        raise InvalidConfigError(
            "transactional id expiration and max partitions per transaction must be positive"
        )


def check_transactional_id(transactional_id: str) -> None:
    size = len(transactional_id.encode())
    if size == 0 or size > MAX_ID_BYTES:
        raise InvalidRequestError(
            f"transactional_id {transactional_id[:60]!r} is {size} bytes of UTF-8: it must be "
            f"1 to {MAX_ID_BYTES} bytes"
        )


def resolve_timeout(timeout_ms: int, config: TxnConfig) -> int:
    """The timeout to store: 0 asks for the coordinator's default."""
    if timeout_ms == 0:
        return config.default_timeout_ms
    if timeout_ms < 0 or timeout_ms > config.max_timeout_ms:
        raise InvalidTransactionTimeoutError(
            f"transaction_timeout_ms {timeout_ms} is outside 1..{config.max_timeout_ms} (the "
            f"coordinator's transaction max timeout); ask for less, or 0 for the default"
        )
    return timeout_ms


def check_partitions(partitions: Sequence[TopicPartition]) -> None:
    if not partitions:
        raise InvalidRequestError("no partitions to add: send 1 to 10,000")
    if len(partitions) > MAX_PARTITIONS_PER_REQUEST:
        raise InvalidRequestError(
            f"{len(partitions)} partitions to add: at most {MAX_PARTITIONS_PER_REQUEST} a request"
        )
    for topic, partition in partitions:
        size = len(topic.encode())
        if size == 0 or size > MAX_ID_BYTES:
            raise InvalidRequestError(
                f"topic name {topic[:60]!r} is {size} bytes: it must be 1 to {MAX_ID_BYTES}"
            )
        if partition < 0:
            raise InvalidRequestError(f"partition {partition} of {topic!r} is negative")
