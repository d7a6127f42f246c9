"""AlterClientQuotas / DescribeClientQuotas plans against a metadata image."""

from __future__ import annotations

import math

import pytest

from raftka.common.metadata.image import MetadataImage
from raftka.controller.control.quotas import alter_client_quotas, describe_client_quotas
from raftka.controller.control.result import ControllerResult
from raftka.v1.common_pb2 import ClientQuotaEntity, ClientQuotaEntityComponent, ErrorCode
from raftka.v1.security_pb2 import (
    CLIENT_QUOTA_MATCH_ANY,
    CLIENT_QUOTA_MATCH_DEFAULT,
    CLIENT_QUOTA_MATCH_EXACT,
    AlterClientQuotasRequest,
    AlterClientQuotasResponse,
    ClientQuotaAlteration,
    ClientQuotaFilterComponent,
    ClientQuotaOp,
    DescribeClientQuotasRequest,
)


def entity(**parts: str | None) -> ClientQuotaEntity:
    return ClientQuotaEntity(
        components=[
            ClientQuotaEntityComponent(
                entity_type=kind.replace("_", "-"), entity_name=name or "", is_default=name is None
            )
            for kind, name in parts.items()
        ]
    )


def alter(*entries: ClientQuotaAlteration, validate_only: bool = False) -> AlterClientQuotasRequest:
    return AlterClientQuotasRequest(entries=entries, validate_only=validate_only)


def entry(e: ClientQuotaEntity, **ops: float | None) -> ClientQuotaAlteration:
    return ClientQuotaAlteration(
        entity=e,
        ops=[
            ClientQuotaOp(key=k, remove=True) if v is None else ClientQuotaOp(key=k, value=v)
            for k, v in ops.items()
        ],
    )


def commit(image: MetadataImage, result: ControllerResult[AlterClientQuotasResponse]) -> list[int]:
    image.apply_batch(result.batch(), image.last_applied_index + 1)
    return [r.error_code for r in result.response.results]


def test_setting_and_removing_quotas_writes_records_that_the_image_applies() -> None:
    image = MetadataImage()
    codes = commit(
        image,
        alter_client_quotas(
            image,
            alter(
                entry(entity(user="alice", client_id="app"), producer_byte_rate=1024),
                entry(entity(client_id=None), consumer_byte_rate=2048, request_percentage=50),
            ),
        ),
    )
    assert codes == [ErrorCode.NONE, ErrorCode.NONE]
    assert image.security.quotas == {
        (("client-id", "app"), ("user", "alice")): {"producer_byte_rate": 1024},
        (("client-id", None),): {"consumer_byte_rate": 2048, "request_percentage": 50},
    }
    result = alter_client_quotas(
        image, alter(entry(entity(client_id=None), consumer_byte_rate=None))
    )
    assert len(result.records) == 1 and result.records[0].client_quota.remove
    commit(image, result)
    assert image.security.quotas[(("client-id", None),)] == {"request_percentage": 50}


def test_unchanged_values_and_absent_removals_write_nothing() -> None:
    image = MetadataImage()
    commit(image, alter_client_quotas(image, alter(entry(entity(user="a"), producer_byte_rate=1))))
    again = alter_client_quotas(
        image, alter(entry(entity(user="a"), producer_byte_rate=1, consumer_byte_rate=None))
    )
    assert again.records == () and again.response.results[0].error_code == ErrorCode.NONE


def test_validate_only_checks_but_writes_nothing() -> None:
    image = MetadataImage()
    result = alter_client_quotas(
        image,
        alter(
            entry(entity(user="a"), producer_byte_rate=1),
            entry(entity(user="b"), producer_byte_rate=-1),
            validate_only=True,
        ),
    )
    assert result.records == ()
    codes = [r.error_code for r in result.response.results]
    assert codes == [ErrorCode.NONE, ErrorCode.INVALID_REQUEST]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (entry(ClientQuotaEntity(), producer_byte_rate=1), "no components"),
        (entry(entity(group="g"), producer_byte_rate=1), "unknown quota entity type"),
        (
            entry(
                ClientQuotaEntity(
                    components=[
                        ClientQuotaEntityComponent(entity_type="user", entity_name="a"),
                        ClientQuotaEntityComponent(entity_type="user", entity_name="b"),
                    ]
                ),
                producer_byte_rate=1,
            ),
            "more than once",
        ),
        (entry(entity(user=""), producer_byte_rate=1), "has no name"),
        (entry(entity(user="x" * 256), producer_byte_rate=1), "at most 255"),
        (entry(entity(user="a"), fetch_rate=1), "unknown quota key"),
        (entry(entity(user="a"), producer_byte_rate=0), "above 0"),
        (entry(entity(user="a"), producer_byte_rate=math.nan), "above 0"),
        (entry(entity(user="a"), producer_byte_rate=math.inf), "above 0"),
        (entry(entity(user="a")), "no quota to set"),
    ],
)
def test_a_bad_entry_is_refused_alone(bad: ClientQuotaAlteration, message: str) -> None:
    image = MetadataImage()
    good = entry(entity(user="ok"), producer_byte_rate=5)
    result = alter_client_quotas(image, alter(bad, good))
    first, second = result.response.results
    assert first.error_code == ErrorCode.INVALID_REQUEST and message in first.error_message
    assert second.error_code == ErrorCode.NONE
    assert len(result.records) == 1


def test_a_key_twice_in_an_entry_or_an_entity_twice_is_refused() -> None:
    image = MetadataImage()
    twice = ClientQuotaAlteration(
        entity=entity(user="a"),
        ops=[ClientQuotaOp(key="producer_byte_rate", value=1)] * 2,
    )
    result = alter_client_quotas(image, alter(twice))
    assert "more than once" in result.response.results[0].error_message
    same = entry(entity(user="b"), producer_byte_rate=1)
    result = alter_client_quotas(image, alter(same, same))
    assert all("2 times" in r.error_message for r in result.response.results)
    assert result.records == ()


def populated() -> MetadataImage:
    image = MetadataImage()
    commit(
        image,
        alter_client_quotas(
            image,
            alter(
                entry(entity(user="alice"), producer_byte_rate=1),
                entry(entity(user="alice", client_id="app"), producer_byte_rate=2),
                entry(entity(user=None), producer_byte_rate=3),
                entry(entity(client_id="app"), producer_byte_rate=4),
                entry(entity(client_id=None), producer_byte_rate=5),
            ),
        ),
    )
    return image


def describe(
    image: MetadataImage, *components: ClientQuotaFilterComponent, strict: bool = False
) -> list[float]:
    response = describe_client_quotas(
        image, DescribeClientQuotasRequest(components=components, strict=strict)
    )
    assert response.error_code == ErrorCode.NONE, response.error_message
    return sorted(e.values["producer_byte_rate"] for e in response.entries)


def component(kind: str, match_type: int, match: str = "") -> ClientQuotaFilterComponent:
    return ClientQuotaFilterComponent(entity_type=kind, match_type=match_type, match=match)  # type: ignore[arg-type]


def test_describe_matches_exact_default_and_any_components() -> None:
    image = populated()
    assert describe(image) == [1, 2, 3, 4, 5]
    assert describe(image, component("user", CLIENT_QUOTA_MATCH_EXACT, "alice")) == [1, 2]
    assert describe(image, component("user", CLIENT_QUOTA_MATCH_EXACT, "alice"), strict=True) == [1]
    assert describe(image, component("user", CLIENT_QUOTA_MATCH_DEFAULT)) == [3]
    assert describe(image, component("user", CLIENT_QUOTA_MATCH_ANY)) == [1, 2, 3]
    assert describe(image, component("client-id", CLIENT_QUOTA_MATCH_ANY), strict=True) == [4, 5]
    assert describe(
        image,
        component("user", CLIENT_QUOTA_MATCH_ANY),
        component("client-id", CLIENT_QUOTA_MATCH_EXACT, "app"),
    ) == [2]


def test_describe_refuses_a_bad_filter() -> None:
    image = populated()
    for bad in (
        [component("group", CLIENT_QUOTA_MATCH_ANY)],
        [component("user", CLIENT_QUOTA_MATCH_ANY)] * 2,
        [component("user", CLIENT_QUOTA_MATCH_EXACT)],
    ):
        response = describe_client_quotas(image, DescribeClientQuotasRequest(components=bad))
        assert response.error_code == ErrorCode.INVALID_REQUEST and not response.entries
