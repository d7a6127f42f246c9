"""The security part of the metadata image: ACLs, user credentials and client quotas.

Replayed from AccessControlEntryRecord, UserScramCredentialRecord, ClientQuotaRecord and their
removals, like topics, so every node authorizes, authenticates and throttles alike, and
snapshots keep it all. ``version`` grows with every change, so a node's authorizer or quota
manager can rebuild its indexes only when something changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from raftka.common.metadata.errors import MetadataReplayError
from raftka.common.security.model import (
    QUOTA_ENTITY_TYPES,
    QUOTA_KEYS,
    Acl,
    QuotaEntityKey,
    ScramCredential,
    quota_entity_key,
    quota_entity_proto,
)
from raftka.v1.metadata_pb2 import (
    AccessControlEntryRecord,
    ClientQuotaRecord,
    MetadataRecord,
    RemoveAccessControlEntryRecord,
    RemoveUserScramCredentialRecord,
    UserScramCredentialRecord,
)

SECURITY_RECORD_KINDS = frozenset(
    {
        "access_control_entry",
        "remove_access_control_entry",
        "user_scram_credential",
        "remove_user_scram_credential",
        "client_quota",
    }
)
"""The MetadataRecord oneof names this part of the image applies."""


class SecurityImage:
    """ACLs by id, credentials by (user, mechanism), quotas by entity."""

    __slots__ = ("_acls", "_credentials", "_quotas", "version")

    def __init__(self) -> None:
        self._acls: dict[str, Acl] = {}
        self._credentials: dict[tuple[str, int], ScramCredential] = {}
        self._quotas: dict[QuotaEntityKey, dict[str, float]] = {}
        self.version = 0

    def copy(self) -> SecurityImage:
        other = SecurityImage()
        other._acls = dict(self._acls)
        other._credentials = dict(self._credentials)
        other._quotas = {k: dict(v) for k, v in self._quotas.items()}
        other.version = self.version
        return other

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecurityImage):
            return NotImplemented
        return (
            self._acls == other._acls
            and self._credentials == other._credentials
            and self._quotas == other._quotas
        )

    __hash__ = None  # type: ignore[assignment]

    # ---- reads ----

    @property
    def acls(self) -> Mapping[str, Acl]:
        """Every ACL by id."""
        return MappingProxyType(self._acls)

    def credential(self, name: str, mechanism: int) -> ScramCredential | None:
        return self._credentials.get((name, mechanism))

    @property
    def credentials(self) -> Mapping[tuple[str, int], ScramCredential]:
        return MappingProxyType(self._credentials)

    @property
    def quotas(self) -> Mapping[QuotaEntityKey, Mapping[str, float]]:
        """Every entity with at least one quota, and its quotas."""
        return MappingProxyType(self._quotas)

    # ---- replay ----

    def apply(self, record: MetadataRecord) -> None:
        kind = record.WhichOneof("record")
        if kind == "access_control_entry":
            self._apply_acl(record.access_control_entry)
        elif kind == "remove_access_control_entry":
            self._apply_remove_acl(record.remove_access_control_entry)
        elif kind == "user_scram_credential":
            self._apply_credential(record.user_scram_credential)
        elif kind == "remove_user_scram_credential":
            self._apply_remove_credential(record.remove_user_scram_credential)
        elif kind == "client_quota":
            self._apply_quota(record.client_quota)
        else:  # pragma: no cover - the image dispatches only SECURITY_RECORD_KINDS here
            raise MetadataReplayError(f"not a security record: {kind}")
        self.version += 1

    def _apply_acl(self, r: AccessControlEntryRecord) -> None:
        if not r.id:
            raise MetadataReplayError("AccessControlEntryRecord has no id")
        if r.id in self._acls:
            raise MetadataReplayError(f"AccessControlEntryRecord id {r.id} already exists")
        self._acls[r.id] = Acl.from_proto(r.binding)

    def _apply_remove_acl(self, r: RemoveAccessControlEntryRecord) -> None:
        if self._acls.pop(r.id, None) is None:
            raise MetadataReplayError(f"RemoveAccessControlEntryRecord for unknown ACL id {r.id}")

    def _apply_credential(self, r: UserScramCredentialRecord) -> None:
        if not r.name:
            raise MetadataReplayError("UserScramCredentialRecord has no user name")
        self._credentials[(r.name, r.mechanism)] = ScramCredential(
            name=r.name,
            mechanism=r.mechanism,
            salt=r.salt,
            stored_key=r.stored_key,
            server_key=r.server_key,
            iterations=r.iterations,
        )

    def _apply_remove_credential(self, r: RemoveUserScramCredentialRecord) -> None:
        if self._credentials.pop((r.name, r.mechanism), None) is None:
            raise MetadataReplayError(
                f"RemoveUserScramCredentialRecord for {r.name!r} mechanism {r.mechanism}, "
                "which has no credential"
            )

    def _apply_quota(self, r: ClientQuotaRecord) -> None:
        key = quota_entity_key(r.entity)
        types = [kind for kind, _ in key]
        if not key or len(set(types)) != len(types) or set(types) - set(QUOTA_ENTITY_TYPES):
            raise MetadataReplayError(f"ClientQuotaRecord has a bad entity {key}")
        if r.key not in QUOTA_KEYS:
            raise MetadataReplayError(f"ClientQuotaRecord has an unknown key {r.key!r}")
        if r.remove:
            values = self._quotas.get(key, {})
            values.pop(r.key, None)
            if not values:
                self._quotas.pop(key, None)
            return
        if not r.value > 0:
            raise MetadataReplayError(f"ClientQuotaRecord {key} {r.key} has value {r.value}")
        self._quotas.setdefault(key, {})[r.key] = r.value

    # ---- snapshots ----

    def to_snapshot_records(self) -> list[MetadataRecord]:
        out: list[MetadataRecord] = []
        for acl_id in sorted(self._acls):
            out.append(
                MetadataRecord(
                    access_control_entry=AccessControlEntryRecord(
                        id=acl_id, binding=self._acls[acl_id].to_proto()
                    )
                )
            )
        for name, mechanism in sorted(self._credentials):
            c = self._credentials[(name, mechanism)]
            out.append(
                MetadataRecord(
                    user_scram_credential=UserScramCredentialRecord(
                        name=c.name,
                        mechanism=c.mechanism,  # type: ignore[arg-type]
                        salt=c.salt,
                        stored_key=c.stored_key,
                        server_key=c.server_key,
                        iterations=c.iterations,
                    )
                )
            )
        for key in sorted(self._quotas, key=repr):
            for name, value in sorted(self._quotas[key].items()):
                out.append(
                    MetadataRecord(
                        client_quota=ClientQuotaRecord(
                            entity=quota_entity_proto(key), key=name, value=value
                        )
                    )
                )
        return out
