"""A role's listeners: one shared listener, or a client and an internal one each with its own
client authentication; layouts that would make other nodes anonymous to the authorizer are
refused with the key to set."""

from __future__ import annotations

import dataclasses

import pytest

from raftka.common.metadata.model import CLIENT_LISTENER, INTERNAL_LISTENER
from raftka.common.security.listeners import (
    BROKER_KEYS,
    CONTROLLER_KEYS,
    ListenerConfigError,
    ListenerKeys,
    plan_listeners,
)
from raftka.common.security.settings import SecuritySettings

TLS = SecuritySettings(
    tls_cert_file="/tls/node.crt",
    tls_key_file="/tls/node.key",
    tls_ca_file="/tls/ca.crt",
    client_auth="required",
    authorizer_enable=True,
)
TOKENS = dataclasses.replace(TLS, client_auth="none")


def test_one_listener_serves_everyone_under_client_auth() -> None:
    (only,) = plan_listeners(TLS, BROKER_KEYS, client="127.0.0.1:9092", internal="")
    assert (only.name, only.address) == (CLIENT_LISTENER, "127.0.0.1:9092")
    assert only.serves_clients and only.serves_nodes
    assert only.settings == TLS


def test_split_listeners_take_their_own_client_auth() -> None:
    client, internal = plan_listeners(
        TOKENS, BROKER_KEYS, client="0.0.0.0:9092", internal="10.0.0.1:9093"
    )
    assert (client.name, client.address, client.settings.client_auth) == (
        CLIENT_LISTENER,
        "0.0.0.0:9092",
        "none",
    )
    assert client.serves_clients and not client.serves_nodes
    assert (internal.name, internal.address, internal.settings.client_auth) == (
        INTERNAL_LISTENER,
        "10.0.0.1:9093",
        "required",
    )
    assert internal.serves_nodes and not internal.serves_clients
    # Everything else of the node's security is the same on both.
    assert dataclasses.replace(internal.settings, client_auth="none") == TOKENS


def test_a_controller_without_a_client_listener_serves_all_on_its_voter_address() -> None:
    (only,) = plan_listeners(TLS, CONTROLLER_KEYS, client="", internal="127.0.0.1:9093")
    assert only.address == "127.0.0.1:9093" and only.serves_nodes and only.serves_clients
    client, internal = plan_listeners(
        TOKENS, CONTROLLER_KEYS, client="127.0.0.1:9193", internal="127.0.0.1:9093"
    )
    assert (client.address, client.settings.client_auth) == ("127.0.0.1:9193", "none")
    assert (internal.address, internal.settings.client_auth) == ("127.0.0.1:9093", "required")


@pytest.mark.parametrize(
    ("keys", "client", "internal", "names"),
    [
        (BROKER_KEYS, "127.0.0.1:9092", "", "broker.internal_listen"),
        (CONTROLLER_KEYS, "", "127.0.0.1:9093", "controller.client_listen"),
    ],
)
def test_an_only_listener_that_asks_no_certificate_is_refused_with_the_authorizer(
    keys: ListenerKeys, client: str, internal: str, names: str
) -> None:
    with pytest.raises(ListenerConfigError) as e:
        plan_listeners(TOKENS, keys, client=client, internal=internal)
    assert f"Set {names}" in e.value.message
    assert "User:ANONYMOUS" in e.value.message


def test_an_internal_listener_that_asks_no_certificate_is_refused_with_the_authorizer() -> None:
    settings = dataclasses.replace(TOKENS, internal_client_auth="none")
    with pytest.raises(ListenerConfigError, match="internal_client_auth = 'required'"):
        plan_listeners(settings, BROKER_KEYS, client="127.0.0.1:9092", internal="127.0.0.1:9093")


@pytest.mark.parametrize(
    "settings",
    [
        dataclasses.replace(TOKENS, authorizer_enable=False),  # nothing checks principals
        SecuritySettings(client_auth="none", authorizer_enable=True),  # plaintext: no certs
        dataclasses.replace(TLS, client_auth="requested"),  # enforced as required
    ],
)
def test_shared_listeners_that_still_let_nodes_in_are_accepted(
    settings: SecuritySettings,
) -> None:
    (only,) = plan_listeners(settings, BROKER_KEYS, client="127.0.0.1:9092", internal="")
    assert only.settings == settings


@pytest.mark.parametrize(
    ("client", "internal"),
    [("127.0.0.1:9092", "127.0.0.1:9092"), ("0.0.0.0:9092", "10.0.0.1:9092")],
)
def test_both_listeners_on_one_port_are_refused(client: str, internal: str) -> None:
    with pytest.raises(ListenerConfigError, match="a port of its own"):
        plan_listeners(TLS, BROKER_KEYS, client=client, internal=internal)


def test_different_hosts_may_share_a_port_number() -> None:
    listeners = plan_listeners(TLS, BROKER_KEYS, client="10.0.0.1:9092", internal="10.0.1.1:9092")
    assert [x.name for x in listeners] == [CLIENT_LISTENER, INTERNAL_LISTENER]
