import pytest

from raftka.common.errors import InvalidConfigError
from raftka.common.security.principal_mapping import (
    NoMatchingRuleError,
    PrincipalMapper,
    parse_rules,
)


def name(rules: str, dn: str) -> str:
    return PrincipalMapper.parse(rules).name_of(dn)


def test_default_gives_the_whole_dn() -> None:
    assert name("DEFAULT", "CN=node-1,OU=raftka") == "CN=node-1,OU=raftka"


def test_cn_rule_of_raftka_up() -> None:
    rules = "RULE:^CN=([^,]+).*$/$1/,DEFAULT"
    assert name(rules, "CN=node-1,OU=raftka") == "node-1"
    assert name(rules, "OU=x,CN=y") == "OU=x,CN=y"  # the rule needs CN first: DEFAULT


def test_first_full_match_wins() -> None:
    rules = "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),OU=(.*?)$/$1@$2/L,DEFAULT"
    assert name(rules, "CN=svc,OU=ServiceUsers,O=Acme") == "svc"
    assert name(rules, "CN=Alice,OU=Sales") == "alice@sales"


def test_partial_match_is_not_a_match() -> None:
    # Kafka uses Matcher.matches(): the regex must cover the whole DN.
    with pytest.raises(NoMatchingRuleError, match="CN=a,OU=b"):
        name("RULE:CN=([^,]+)/$1/", "CN=a,OU=b")


def test_upper_and_lower_case() -> None:
    assert name("RULE:^CN=(.*)$/$1/U", "CN=bob") == "BOB"
    assert name("RULE:^CN=(.*)$/$1/L", "CN=BoB") == "bob"


def test_escaped_slash_and_commas_inside_a_rule() -> None:
    rules = parse_rules(r"RULE:^CN=([^,]+),OU=a\/b$/x\/$1/, DEFAULT")
    assert len(rules) == 2
    assert PrincipalMapper(rules).name_of("CN=z,OU=a/b") == "x/z"


def test_several_groups() -> None:
    assert name("RULE:^CN=(\\w+),OU=(\\w+)$/$2-$1/", "CN=a,OU=b") == "b-a"


@pytest.mark.parametrize(
    "bad",
    ["", "RULE:^CN$", "RULE:(/x/", "NOPE", "DEFAULT DEFAULT", "RULE:a/b/X", "SAN:DEFAULT"],
)
def test_bad_rules_are_refused(bad: str) -> None:
    with pytest.raises(InvalidConfigError):
        parse_rules(bad)


def test_san_rules_map_a_subject_alternative_name() -> None:
    """A SPIFFE id (or a service DNS name) in a SAN names the principal; rules still apply in
    order, and a SAN rule never looks at the DN."""
    mapper = PrincipalMapper.parse(
        r"SAN:RULE:^spiffe:\/\/example\.org\/ns\/prod\/sa\/(.*)$/$1/,"
        "RULE:^CN=([^,]+).*$/$1/L"
    )
    sans = ["billing.prod.svc", "spiffe://example.org/ns/prod/sa/billing"]
    assert mapper.name_of("CN=Whatever,OU=x", sans) == "billing"
    assert mapper.name_of("CN=Alice,OU=x", ["alice.example.org"]) == "alice"
    with pytest.raises(NoMatchingRuleError, match="subject alternative names"):
        PrincipalMapper.parse("SAN:RULE:^spiffe:.*/x/").name_of("CN=a", ["dns.example"])
    # A SAN rule does not match the DN, even when the DN would fit its regex.
    with pytest.raises(NoMatchingRuleError):
        PrincipalMapper.parse("SAN:RULE:^CN=(.*)$/$1/").name_of("CN=a")
