import pytest

from raftka.broker.groups.placement import java_string_hash, partition_for


def _java_reference(text: str) -> int:
    """Java's definition written out: s[0]*31^(n-1) + ... + s[n-1] over UTF-16 code units,
    reduced to a signed int32."""
    units = []
    for ch in text:
        cp = ord(ch)
        if cp > 0xFFFF:
            cp -= 0x10000
            units += [0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF)]
        else:
            units.append(cp)
    n = len(units)
    total: int = sum(u * 31 ** (n - 1 - i) for i, u in enumerate(units)) % (1 << 32)
    return total - (1 << 32) if total >= 1 << 31 else total


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("a", 97),
        ("ab", 97 * 31 + 98),
        ("hello", 99162322),  # "hello".hashCode() in Java
        ("polygenelubricants", -2147483648),  # Java's famous Integer.MIN_VALUE hash
        ("\U0001f600", 0xD83D * 31 + 0xDE00),  # a non-BMP character: two UTF-16 units
    ],
)
def test_java_string_hash_matches_java(text: str, expected: int) -> None:
    assert java_string_hash(text) == expected
    assert _java_reference(text) == expected


@pytest.mark.parametrize("text", ["my-group", "é-group", "x" * 249, "组", "a\U00010348b"])
def test_java_string_hash_agrees_with_the_definition(text: str) -> None:
    assert java_string_hash(text) == _java_reference(text)


def test_partition_masks_the_sign_bit_and_takes_the_modulus() -> None:
    # MIN_VALUE & 0x7fffffff == 0, so partition 0 whatever the count.
    assert partition_for("polygenelubricants", 50) == 0
    assert partition_for("a", 50) == 97 % 50
    assert partition_for("", 50) == 0
    negative = "consumer-group"  # hashes to a negative int
    h = java_string_hash(negative)
    assert h < 0
    assert partition_for(negative, 50) == (h & 0x7FFFFFFF) % 50


def test_partition_count_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        partition_for("g", 0)
