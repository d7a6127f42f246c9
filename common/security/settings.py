"""A node's ``[security]`` config section: TLS files, client authentication, authorization.

Example (a production broker)::

    [security]
    tls_cert_file = "/etc/raftka/tls/tls.crt"
    tls_key_file = "/etc/raftka/tls/tls.key"
    tls_ca_file = "/etc/raftka/tls/ca.crt"
    client_auth = "required"
    principal_mapping_rules = "RULE:^CN=([^,]+).*$/$1/,DEFAULT"
    authorizer_enable = true
    super_users = "User:controller-0;User:controller-1;User:controller-2"

With no TLS files the node's listeners are plaintext, which it accepts only on loopback
addresses unless ``allow_plaintext`` says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ClientAuth = Literal["none", "requested", "required"]


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    tls_cert_file: str = ""
    """PEM certificate chain of this node: its server certificate, and the client certificate
    it presents when it calls other nodes. Empty: plaintext listeners."""
    tls_key_file: str = ""
    """PEM private key of tls_cert_file."""
    tls_ca_file: str = ""
    """PEM CA bundle that client and peer certificates must chain to (and that this node
    trusts when it calls other nodes)."""
    client_auth: ClientAuth = "requested"
    """mTLS on the listeners clients use (``broker.listen``, ``controller.client_listen``; a
    role's only listener when it has one): "required" refuses a TLS connection without a
    valid client certificate; "requested" is enforced as "required" (gRPC Python cannot ask
    without requiring); "none" asks for no certificate (callers then authenticate with a
    bearer token, or are anonymous)."""
    internal_client_auth: ClientAuth = "required"
    """mTLS on a role's *separate* internal listener (``broker.internal_listen``, and
    ``controller.listen`` when ``controller.client_listen`` is set), which other nodes call:
    their certificates are their identities, so keep it "required"."""
    principal_mapping_rules: str = "DEFAULT"
    """Kafka's ssl.principal.mapping.rules: comma-separated ``RULE:regex/replacement/[LU]``
    rules applied to the certificate's subject DN, first full match wins; ``DEFAULT`` gives
    the whole DN. The result becomes ``User:<result>``."""
    require_authentication: bool = False
    """Refuse (UNAUTHENTICATED) every call that presents neither a client certificate nor a
    valid bearer token."""
    authorizer_enable: bool = False
    """Check ACLs (kept in the metadata log) on every RPC; inter-node RPCs then need
    CLUSTER_ACTION, which node principals get by being super users."""
    super_users: str = ""
    """``;``-separated principals allowed everything (e.g. "User:node-1;User:admin")."""
    allow_everyone_if_no_acl_found: bool = False
    """Kafka's allow.everyone.if.no.acl.found: a resource without any ACL is open to all."""
    allow_plaintext: bool = False
    """Let the node listen without TLS on a non-loopback address (it refuses to otherwise)."""

    @property
    def tls_enabled(self) -> bool:
        return bool(self.tls_cert_file)

    @property
    def super_user_set(self) -> frozenset[str]:
        return frozenset(p.strip() for p in self.super_users.split(";") if p.strip())
