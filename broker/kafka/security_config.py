"""The Kafka listener's security settings: which security protocol, which SASL mechanisms, and
the refusals of combinations that would weaken the node's other listeners.

``broker.kafka_security_protocol`` is one of Kafka's names. ``SASL_PLAINTEXT`` is refused, as
the gRPC listeners refuse bearer tokens on plaintext: a PLAIN password would cross the network
in clear, and a SCRAM exchange in clear can be replayed offline against the password.
``PLAINTEXT`` is refused on a node with TLS or require_authentication, where it would be an
unauthenticated way around them; on a node without TLS its callers are ``User:ANONYMOUS``, as
the plaintext gRPC listener's are."""

from __future__ import annotations

from dataclasses import replace

from raftka.common.errors import ConfigFileError
from raftka.common.security.settings import SecuritySettings
from raftka.v1.common_pb2 import SCRAM_SHA_256, SCRAM_SHA_512

PLAINTEXT = "PLAINTEXT"
SSL = "SSL"
SASL_SSL = "SASL_SSL"
SASL_PLAINTEXT = "SASL_PLAINTEXT"
PROTOCOLS = (PLAINTEXT, SSL, SASL_SSL)

PLAIN = "PLAIN"
SCRAM_MECHANISMS: dict[str, int] = {"SCRAM-SHA-256": SCRAM_SHA_256, "SCRAM-SHA-512": SCRAM_SHA_512}
MECHANISMS = (*SCRAM_MECHANISMS, PLAIN)


def mechanism_list(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(m.strip().upper() for m in text.split(",") if m.strip()))


CLIENT_AUTH = ("none", "requested", "required")


def check_kafka_security_keys(protocol: str, mechanisms: str, client_auth: str = "") -> None:
    """The broker-table keys on their own (config load)."""
    if client_auth and client_auth not in CLIENT_AUTH:
        raise ConfigFileError(
            f"broker.kafka_ssl_client_auth {client_auth!r} is not one of {', '.join(CLIENT_AUTH)} "
            "(or empty: security.client_auth)"
        )
    if protocol.upper() == SASL_PLAINTEXT:
        raise ConfigFileError(
            "broker.kafka_security_protocol = SASL_PLAINTEXT is refused: SASL over plaintext "
            "sends passwords (PLAIN) or replayable proofs (SCRAM) in clear; use SASL_SSL with "
            "the node's TLS certificate (security.tls_cert_file / tls_key_file)"
        )
    if protocol and protocol.upper() not in PROTOCOLS:
        raise ConfigFileError(
            f"broker.kafka_security_protocol {protocol!r} is not one of "
            f"{', '.join(PROTOCOLS)} (or empty: SASL_SSL with TLS, else PLAINTEXT)"
        )
    names = mechanism_list(mechanisms)
    unknown = [m for m in names if m not in MECHANISMS]
    if unknown or not names:
        raise ConfigFileError(
            f"broker.kafka_sasl_mechanisms {mechanisms!r}: "
            + (f"{', '.join(unknown)} not supported; " if unknown else "empty; ")
            + f"use some of {', '.join(MECHANISMS)}"
        )


def kafka_security_protocol(protocol: str, security: SecuritySettings) -> str:
    """The listener's protocol: as configured, or SASL_SSL with TLS and PLAINTEXT without.
    ConfigFileError for a combination that does not hold together."""
    chosen = protocol.upper() or (SASL_SSL if security.tls_enabled else PLAINTEXT)
    if chosen in (SSL, SASL_SSL) and not security.tls_enabled:
        raise ConfigFileError(
            f"broker.kafka_security_protocol = {chosen} needs the node's TLS certificate: set "
            "security.tls_cert_file and security.tls_key_file (and tls_ca_file for client "
            "certificates)"
        )
    if chosen == PLAINTEXT and (security.tls_enabled or security.require_authentication):
        raise ConfigFileError(
            "broker.kafka_security_protocol = PLAINTEXT would serve Kafka's protocol without "
            "TLS or authentication on a node with TLS or require_authentication on: use "
            "SASL_SSL or SSL (the default with TLS), or remove kafka_listen"
        )
    return chosen


def kafka_tls_settings(client_auth: str, security: SecuritySettings) -> SecuritySettings:
    """The node's TLS settings with the Kafka listener's own client authentication."""
    if not client_auth:
        return security
    return replace(security, client_auth=client_auth)  # type: ignore[arg-type]
