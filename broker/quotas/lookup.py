"""Which quota applies to a (user, client id), by Kafka's precedence.

For each quota key separately, the most specific entity with a value for that key wins
(``ClientQuotaManager``'s order): user+client-id > user+default client-id > user >
default user+client-id > default user+default client-id > default user > client-id >
default client-id. A default applies to every user (client id) that has no quota of its own,
each with its own rate: the measured entity has the caller's real names where the quota's entity
has defaults, and "" where it has no component of that type (so, e.g., every client id of a user
with a user-only quota shares one rate).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from raftka.common.security.model import QUOTA_CLIENT_ID, QUOTA_USER, QuotaEntityKey

# (user component, client-id component): "name" is the caller's, None the default, "-" absent.
_NAME = "name"
_ABSENT = "-"
_PRECEDENCE: tuple[tuple[str | None, str | None], ...] = (
    (_NAME, _NAME),
    (_NAME, None),
    (_NAME, _ABSENT),
    (None, _NAME),
    (None, None),
    (None, _ABSENT),
    (_ABSENT, _NAME),
    (_ABSENT, None),
)

MeasuredEntity = tuple[str, str]
"""(user, client id) whose traffic shares one rate; "" for a component the quota lacks."""


@dataclass(frozen=True, slots=True)
class AppliedQuota:
    """The quota found for a caller: its bound and the entity its traffic is measured as."""

    bound: float
    measured: MeasuredEntity


def _entity(
    user_part: str | None, client_part: str | None, user: str, client_id: str
) -> QuotaEntityKey:
    parts: list[tuple[str, str | None]] = []
    if client_part != _ABSENT:
        parts.append((QUOTA_CLIENT_ID, client_id if client_part == _NAME else None))
    if user_part != _ABSENT:
        parts.append((QUOTA_USER, user if user_part == _NAME else None))
    return tuple(parts)  # "client-id" sorts before "user", as QuotaEntityKey requires


class QuotaLookup:
    """The quotas of one quota key (e.g. ``producer_byte_rate``), indexed by entity."""

    __slots__ = ("_by_entity",)

    def __init__(self, key: str, quotas: Mapping[QuotaEntityKey, Mapping[str, float]]) -> None:
        self._by_entity = {
            entity: values[key] for entity, values in quotas.items() if key in values
        }

    def __bool__(self) -> bool:
        return bool(self._by_entity)

    def find(self, user: str, client_id: str) -> AppliedQuota | None:
        """The quota for the caller, or None when no entity of the key applies."""
        for user_part, client_part in _PRECEDENCE:
            bound = self._by_entity.get(_entity(user_part, client_part, user, client_id))
            if bound is not None:
                return AppliedQuota(
                    bound,
                    (
                        "" if user_part == _ABSENT else user,
                        "" if client_part == _ABSENT else client_id,
                    ),
                )
        return None
