"""Kafka's ``ssl.principal.mapping.rules``: from a certificate's subject DN to a user name.

A rule list is comma-separated; each rule is ``DEFAULT`` (the whole DN) or
``RULE:<regex>/<replacement>/[L|U]``: the regex must match the *whole* DN, ``$1``.. in the
replacement name its groups, and a trailing ``L``/``U`` lower- or upper-cases the result.
``/`` inside the regex or replacement is written ``\\/``; commas inside a rule are fine (the
parser reads a rule to its closing ``/``). The first rule that matches wins; when none does the
certificate names no principal and the call is refused (as Kafka refuses the connection).

Beyond Kafka, a rule written ``SAN:RULE:<regex>/<replacement>/[L|U]`` is matched against
each subject alternative name of the certificate instead of the DN (the SAN's value as gRPC
reports it: ``node-1.raftka.svc``, ``spiffe://example.org/ns/prod/sa/billing``,
``10.0.0.7``), so identities carried in SANs (SPIFFE ids, service DNS names) map too. Rules
still apply in order: the first DN rule matching the DN or SAN rule matching any SAN wins.

The DN is in RFC 2253 form, most specific attribute first, without spaces:
``CN=node-1,OU=raftka`` (what Java's ``X500Principal.getName()`` gives Kafka, and what gRPC's
``x509_subject`` gives us).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from raftka.common.errors import InvalidConfigError

_JAVA_GROUP = re.compile(r"\$(\d+)")


@dataclass(frozen=True, slots=True)
class MappingRule:
    """One rule; ``pattern`` None is DEFAULT."""

    pattern: re.Pattern[str] | None
    replacement: str = ""
    case: str = ""
    """"L", "U" or ""."""
    san: bool = False
    """Matched against each subject alternative name rather than the DN."""

    def apply(self, dn: str) -> str | None:
        """The mapped name, or None when this rule does not match ``dn``."""
        if self.pattern is None:
            return dn
        match = self.pattern.fullmatch(dn)
        if match is None:
            return None
        result = match.expand(self.replacement)
        if self.case == "L":
            return result.lower()
        if self.case == "U":
            return result.upper()
        return result


class NoMatchingRuleError(ValueError):
    """No rule maps this DN (the caller is refused)."""


@dataclass(frozen=True, slots=True)
class PrincipalMapper:
    rules: tuple[MappingRule, ...]

    @classmethod
    def parse(cls, text: str) -> PrincipalMapper:
        return cls(parse_rules(text))

    def name_of(self, dn: str, sans: Sequence[str] = ()) -> str:
        """The user name the first matching rule gives the certificate with subject ``dn``
        and subject alternative names ``sans``."""
        for rule in self.rules:
            for subject in sans if rule.san else (dn,):
                name = rule.apply(subject)
                if name is not None:
                    return name
        also = f" or its subject alternative names {list(sans)}" if sans else ""
        raise NoMatchingRuleError(f"no principal mapping rule matches the subject {dn!r}{also}")


def parse_rules(text: str) -> tuple[MappingRule, ...]:
    """Parse a rule list (see the module docstring); raise InvalidConfigError on a bad one."""
    rules: list[MappingRule] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t\n":
            i += 1
        if i >= n:
            break
        san = text.startswith("SAN:RULE:", i)
        if san:
            i += len("SAN:")
        if text.startswith("DEFAULT", i) and not san:
            rules.append(MappingRule(None))
            i += len("DEFAULT")
        elif text.startswith("RULE:", i):
            i += len("RULE:")
            regex, i = _until_slash(text, i)
            replacement, i = _until_slash(text, i)
            case = ""
            if i < n and text[i] in "LU":
                case, i = text[i], i + 1
            try:
                pattern = re.compile(regex)
            except re.error as e:
                raise InvalidConfigError(
                    f"principal mapping rule regex {regex!r} is invalid: {e}"
                ) from None
            rules.append(MappingRule(pattern, _JAVA_GROUP.sub(r"\\g<\1>", replacement), case, san))
        else:
            raise InvalidConfigError(
                "principal mapping rules: expected DEFAULT, RULE:regex/replacement/[LU] or "
                f"SAN:RULE:regex/replacement/[LU] at "
                f"{text[i:]!r}"
            )
        while i < n and text[i] in " \t\n":
            i += 1
        if i < n:
            if text[i] != ",":
                raise InvalidConfigError(
                    f"principal mapping rules: expected ',' between rules at {text[i:]!r}"
                )
            i += 1
    if not rules:
        raise InvalidConfigError("principal mapping rules are empty: use DEFAULT")
    return tuple(rules)


def _until_slash(text: str, i: int) -> tuple[str, int]:
    """The text up to the next unescaped ``/`` (``\\/`` unescaped), and the index after it."""
    out: list[str] = []
    n = len(text)
    while i < n:
        if text.startswith("\\/", i):
            out.append("/")
            i += 2
        elif text[i] == "/":
            return "".join(out), i + 1
        else:
            out.append(text[i])
            i += 1
    raise InvalidConfigError(f"principal mapping rule is missing a closing '/': {text!r}")
