"""Topic-name rules (Kafka's): [a-zA-Z0-9._-], 1..249 characters, not "." or ".."."""

from __future__ import annotations

import re

from raftka.common.errors import InvalidTopicError

MAX_TOPIC_NAME_LENGTH = 249
OFFSETS_TOPIC = "__consumer_offsets"
"""The group coordinator's internal topic (committed offsets and group state)."""
TRANSACTION_STATE_TOPIC = "__transaction_state"
"""The transaction coordinator's internal topic (the state of every transactional id)."""
INTERNAL_TOPICS = frozenset({OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC})
"""Topics only their coordinator writes: clients may read them but never produce to them."""
_LEGAL = re.compile(r"[a-zA-Z0-9._-]+")
_ILLEGAL_CHAR = re.compile(r"[^a-zA-Z0-9._-]")


def validate_topic_name(name: str) -> None:
    """Raises InvalidTopicError saying what is wrong with ``name``."""
    if not name:
        raise InvalidTopicError("topic name is empty")
    if name in (".", ".."):
        raise InvalidTopicError(f"topic name cannot be {name!r}")
    if len(name) > MAX_TOPIC_NAME_LENGTH:
        raise InvalidTopicError(
            f"topic name is {len(name)} characters long; the maximum is {MAX_TOPIC_NAME_LENGTH}"
        )
    if not _LEGAL.fullmatch(name):
        bad = _ILLEGAL_CHAR.search(name)
        assert bad is not None
        raise InvalidTopicError(
            f"topic name {name!r} contains the illegal character {bad.group()!r}; "
            "allowed are ASCII letters, digits, '.', '_' and '-'"
        )


def collision_key(name: str) -> str:
    """Names that differ only in '.' versus '_' collide (they map to the same metric names),
    so Kafka refuses to create one when the other exists."""
    return name.replace(".", "_")
