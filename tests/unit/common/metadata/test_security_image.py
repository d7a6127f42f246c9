"""ACL, credential and quota records replay into the image and survive a snapshot."""

from __future__ import annotations

import pytest

from raftka.common.metadata.errors import MetadataReplayError
from raftka.common.metadata.image import MetadataImage
from raftka.common.security.model import (
    ALLOW,
    LITERAL,
    OP_WRITE,
    RESOURCE_TOPIC,
    Acl,
)
from raftka.v1.common_pb2 import (
    ClientQuotaEntity,
    ClientQuotaEntityComponent,
    ScramMechanism,
)
from raftka.v1.metadata_pb2 import (
    AccessControlEntryRecord,
    ClientQuotaRecord,
    MetadataBatch,
    MetadataRecord,
    RemoveAccessControlEntryRecord,
    RemoveUserScramCredentialRecord,
    UserScramCredentialRecord,
)

ACL = Acl(RESOURCE_TOPIC, "orders", LITERAL, "User:alice", "*", OP_WRITE, ALLOW)
ALICE = ClientQuotaEntity(
    components=[ClientQuotaEntityComponent(entity_type="user", entity_name="alice")]
)
DEFAULT_CLIENT = ClientQuotaEntity(
    components=[ClientQuotaEntityComponent(entity_type="client-id", is_default=True)]
)


def _acl(acl_id: str) -> MetadataRecord:
    return MetadataRecord(
        access_control_entry=AccessControlEntryRecord(id=acl_id, binding=ACL.to_proto())
    )


def _credential(name: str) -> MetadataRecord:
    return MetadataRecord(
        user_scram_credential=UserScramCredentialRecord(
            name=name,
            mechanism=ScramMechanism.SCRAM_SHA_256,
            salt=b"s" * 16,
            stored_key=b"k" * 32,
            server_key=b"v" * 32,
            iterations=4096,
        )
    )


def _quota(
    entity: ClientQuotaEntity, key: str, value: float, remove: bool = False
) -> MetadataRecord:
    return MetadataRecord(
        client_quota=ClientQuotaRecord(entity=entity, key=key, value=value, remove=remove)
    )


def _image(*records: MetadataRecord) -> MetadataImage:
    image = MetadataImage()
    image.apply_batch(MetadataBatch(records=list(records)), 1)
    return image


def test_records_replay_into_the_image_and_a_snapshot_rebuilds_it() -> None:
    image = _image(
        _acl("a1"),
        _acl("a2"),
        MetadataRecord(remove_access_control_entry=RemoveAccessControlEntryRecord(id="a1")),
        _credential("alice"),
        _credential("bob"),
        MetadataRecord(
            remove_user_scram_credential=RemoveUserScramCredentialRecord(
                name="bob", mechanism=ScramMechanism.SCRAM_SHA_256
            )
        ),
        _quota(ALICE, "producer_byte_rate", 1024.0),
        _quota(DEFAULT_CLIENT, "consumer_byte_rate", 2048.0),
        _quota(DEFAULT_CLIENT, "consumer_byte_rate", 0, remove=True),
    )
    security = image.security
    assert dict(security.acls) == {"a2": ACL}
    assert security.credential("alice", ScramMechanism.SCRAM_SHA_256) is not None
    assert security.credential("bob", ScramMechanism.SCRAM_SHA_256) is None
    assert {k: dict(v) for k, v in security.quotas.items()} == {
        (("user", "alice"),): {"producer_byte_rate": 1024.0}
    }
    rebuilt = MetadataImage.from_snapshot(image.to_snapshot(last_term=1))
    assert rebuilt == image
    assert rebuilt.security == security


def test_copies_are_independent() -> None:
    image = _image(_acl("a1"))
    copy = image.copy()
    copy.apply_batch(MetadataBatch(records=[_acl("a2")]), 2)
    assert set(image.security.acls) == {"a1"}
    assert set(copy.security.acls) == {"a1", "a2"}
    assert copy.security.version > image.security.version


@pytest.mark.parametrize(
    "record",
    [
        MetadataRecord(remove_access_control_entry=RemoveAccessControlEntryRecord(id="nope")),
        MetadataRecord(
            remove_user_scram_credential=RemoveUserScramCredentialRecord(
                name="nobody", mechanism=ScramMechanism.SCRAM_SHA_512
            )
        ),
        _quota(ALICE, "bananas_per_second", 1.0),
        _quota(ALICE, "producer_byte_rate", -5.0),
        _quota(ClientQuotaEntity(), "producer_byte_rate", 5.0),
    ],
)
def test_records_that_do_not_fit_fail_replay(record: MetadataRecord) -> None:
    with pytest.raises(MetadataReplayError):
        _image(record)


def test_a_duplicate_acl_id_fails_replay() -> None:
    with pytest.raises(MetadataReplayError, match="already exists"):
        _image(_acl("a1"), _acl("a1"))
