"""Client security settings (librdkafka's names) into a channel's security.

``security.protocol``: ``PLAINTEXT`` (default), ``SSL`` (TLS; with
``ssl.certificate.location`` and ``ssl.key.location`` also mTLS) or ``SASL_SSL`` (TLS plus a
bearer token from ``sasl.username`` / ``sasl.password``, checked against the user's stored
credential). ``ssl.ca.location``: the PEM CA bundle to trust (default: the system roots).
A password is never sent over plaintext: ``SASL_PLAINTEXT`` is refused.
"""

from __future__ import annotations

from typing import Protocol

from raftka.common.errors import InvalidConfigError
from raftka.common.security.tls import ChannelSecurity, bearer_token

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_SSL")


def channel_security(
    security_protocol: str = "PLAINTEXT",
    ssl_ca_location: str = "",
    ssl_certificate_location: str = "",
    ssl_key_location: str = "",
    sasl_username: str = "",
    sasl_password: str = "",
) -> ChannelSecurity | None:
    """The channel security these settings describe (None: plaintext)."""
    protocol = security_protocol.upper()
    if protocol not in SECURITY_PROTOCOLS:
        hint = " (a password is never sent in clear)" if protocol == "SASL_PLAINTEXT" else ""
        raise InvalidConfigError(
            f"security.protocol {security_protocol!r} is not one of "
            f"{', '.join(SECURITY_PROTOCOLS)}{hint}"
        )
    if protocol == "PLAINTEXT":
        if ssl_ca_location or ssl_certificate_location or sasl_username:
            raise InvalidConfigError(
                "ssl.* or sasl.* settings are given but security.protocol is PLAINTEXT: set it "
                "to SSL or SASL_SSL"
            )
        return None
    if bool(ssl_certificate_location) != bool(ssl_key_location):
        raise InvalidConfigError(
            "ssl.certificate.location and ssl.key.location go together (mTLS needs both)"
        )
    token = ""
    if protocol == "SASL_SSL":
        if not sasl_username:
            raise InvalidConfigError("security.protocol SASL_SSL needs sasl.username")
        try:
            token = bearer_token(sasl_username, sasl_password)
        except ValueError as e:
            raise InvalidConfigError(f"sasl.username: {e}") from None
    elif sasl_username:
        raise InvalidConfigError("sasl.username is given: set security.protocol=SASL_SSL")
    return ChannelSecurity(
        tls=True,
        ca_file=ssl_ca_location,
        cert_file=ssl_certificate_location,
        key_file=ssl_key_location,
        token=token,
    )


class SecurityProperties(Protocol):
    """The security settings a producer, consumer or admin config carries."""

    @property
    def security_protocol(self) -> str: ...
    @property
    def ssl_ca_location(self) -> str: ...
    @property
    def ssl_certificate_location(self) -> str: ...
    @property
    def ssl_key_location(self) -> str: ...
    @property
    def sasl_username(self) -> str: ...
    @property
    def sasl_password(self) -> str: ...


def security_of(config: SecurityProperties) -> ChannelSecurity | None:
    """The channel security of a client config."""
    return channel_security(
        config.security_protocol,
        config.ssl_ca_location,
        config.ssl_certificate_location,
        config.ssl_key_location,
        config.sasl_username,
        config.sasl_password,
    )
