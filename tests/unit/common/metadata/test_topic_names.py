from __future__ import annotations

import pytest

from raftka.common.errors import InvalidTopicError
from raftka.common.metadata.topic_names import collision_key, validate_topic_name
from raftka.v1.common_pb2 import ErrorCode


@pytest.mark.parametrize("name", ["a", "A-z_0.9", "x" * 249, "..a", "_", "-"])
def test_legal_names_pass(name: str) -> None:
    validate_topic_name(name)


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "empty"),
        (".", "cannot be '.'"),
        ("..", "cannot be '..'"),
        ("x" * 250, "250 characters long; the maximum is 249"),
        ("a/b", "illegal character '/'"),
        ("a b", "illegal character ' '"),
        ("tópico", "illegal character 'ó'"),
        ("a\nb", "illegal character '\\n'"),
        ("a*", "illegal character '*'"),
    ],
)
def test_illegal_names_say_what_is_wrong(name: str, fragment: str) -> None:
    with pytest.raises(InvalidTopicError) as info:
        validate_topic_name(name)
    assert fragment in info.value.message
    assert info.value.code == ErrorCode.INVALID_TOPIC_EXCEPTION


def test_dot_and_underscore_collide() -> None:
    assert collision_key("a.b") == collision_key("a_b")
    assert collision_key("a.b") != collision_key("a-b")
