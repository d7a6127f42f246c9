"""A node role's listeners (Kafka's ``listeners``): the addresses it binds, who calls each one,
and the client authentication of each.

Why a role may have two: gRPC Python can *require* a client certificate or *not ask* for one,
nothing between (see :mod:`raftka.common.security.tls`). Nodes prove who they are with their
certificates, so a listener other nodes call must require them, and a client holding only a
bearer token could then not connect at all. So, as in Kafka, a role can open a second listener:

- a broker: ``broker.listen`` is the CLIENT listener, ``broker.internal_listen`` the INTERNAL
  one that other brokers dial (replication fetches, transaction markers, transactional-write
  checks);
- a controller: ``controller.listen`` (its address in ``controller.voters``) is the internal one
  that voters and brokers dial, ``controller.client_listen`` the one admin clients use.

A separate client listener takes ``security.client_auth``; a separate internal one takes
``security.internal_client_auth`` (default "required"). A role with a single listener serves
everyone there under ``client_auth``, as before listeners were split. Both ports belong to one
gRPC server: the same services and interceptors answer on each, and a call's principal still
comes from its own connection (certificate or token).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from raftka.common.errors import ConfigFileError
from raftka.common.metadata.model import CLIENT_LISTENER, INTERNAL_LISTENER
from raftka.common.security.settings import SecuritySettings
from raftka.common.security.tls import requires_client_certificate


class ListenerConfigError(ConfigFileError):
    """The listeners of a role, with their security, would not work together."""


@dataclass(frozen=True, slots=True)
class Listener:
    """One port of a role's server."""

    name: str
    """CLIENT_LISTENER or INTERNAL_LISTENER (a single, shared listener is CLIENT)."""
    address: str
    """``host:port`` to bind."""
    settings: SecuritySettings
    """The node's security with this listener's ``client_auth``."""
    serves_nodes: bool
    """Other nodes call it (so, with TLS, it must require their certificates)."""
    serves_clients: bool


@dataclass(frozen=True, slots=True)
class ListenerKeys:
    """The config keys of a role's two listener addresses (for error messages)."""

    role: str
    client: str
    internal: str
    split_key: str
    """The key that adds the second listener."""
    split_purpose: str
    """What that second listener is for."""


BROKER_KEYS = ListenerKeys(
    "broker",
    client="broker.listen",
    internal="broker.internal_listen",
    split_key="broker.internal_listen",
    split_purpose="other brokers a listener of their own (under internal_client_auth)",
)
CONTROLLER_KEYS = ListenerKeys(
    "controller",
    client="controller.client_listen",
    internal="controller.listen",
    split_key="controller.client_listen",
    split_purpose=(
        "admin clients a listener of their own (controller.listen then takes internal_client_auth)"
    ),
)


def plan_listeners(
    settings: SecuritySettings, keys: ListenerKeys, *, client: str, internal: str
) -> tuple[Listener, ...]:
    """The listeners of a role whose client and internal addresses are ``client`` and
    ``internal`` ("" = none: the other one serves everyone). Raises ListenerConfigError when
    the two are the same address, or when the authorizer is on over TLS and the listener
    other nodes call would not ask for their certificates (they would be User:ANONYMOUS and
    every inter-node call refused)."""
    if not client and not internal:
        raise ListenerConfigError(f"the {keys.role} has no listener: set {keys.client}")
    if client and internal and _same_port(client, internal):
        raise ListenerConfigError(
            f"{keys.client} and {keys.internal} are both {client!r}; give the internal "
            "listener a port of its own (or leave it unset to serve everyone on one)"
        )
    if not (client and internal):
        only = client or internal
        listeners: tuple[Listener, ...] = (
            Listener(CLIENT_LISTENER, only, settings, serves_nodes=True, serves_clients=True),
        )
    else:
        internal_settings = dataclasses.replace(settings, client_auth=settings.internal_client_auth)
        listeners = (
            Listener(CLIENT_LISTENER, client, settings, serves_nodes=False, serves_clients=True),
            Listener(
                INTERNAL_LISTENER,
                internal,
                internal_settings,
                serves_nodes=True,
                serves_clients=False,
            ),
        )
    for listener in listeners:
        _check_nodes_authenticate(listener, keys, shared=len(listeners) == 1)
    return listeners


def _check_nodes_authenticate(listener: Listener, keys: ListenerKeys, *, shared: bool) -> None:
    settings = listener.settings
    if not (listener.serves_nodes and settings.tls_enabled and settings.authorizer_enable):
        return
    if requires_client_certificate(settings):
        return
    if shared:
        raise ListenerConfigError(
            f"security.client_auth = {settings.client_auth!r} on the {keys.role}'s only "
            f"listener ({listener.address}): other nodes' certificates would not be asked for, "
            "so they would be User:ANONYMOUS and the authorizer would refuse their calls "
            f"(replication, registration, Raft). Set {keys.split_key} to give "
            f"{keys.split_purpose}, or set security.client_auth = 'required'"
        )
    raise ListenerConfigError(
        f"security.internal_client_auth = {settings.client_auth!r} on {keys.internal} "
        f"({listener.address}): other nodes' certificates would not be asked for, so the "
        "authorizer would refuse their calls. Set security.internal_client_auth = 'required'"
    )


def _same_port(a: str, b: str) -> bool:
    """Whether two ``host:port`` addresses would bind the same port (a wildcard host binds
    every address)."""
    host_a, _, port_a = a.rpartition(":")
    host_b, _, port_b = b.rpartition(":")
    wildcard = {"0.0.0.0", "[::]", "::", "", "*"}
    return port_a == port_b and (host_a == host_b or host_a in wildcard or host_b in wildcard)
