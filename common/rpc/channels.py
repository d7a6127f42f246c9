"""Every gRPC channel and server in Raftka is opened here, with one set of options.

Clients, brokers (replication fetches, controller RPCs) and controllers (Raft peers) all call
:func:`open_channel`; servers come from :func:`new_server` and listen through
:func:`add_listener`. One place means one message-size limit on both ends of every
connection, and one place for transport security.

Security of channels: a channel is TLS when its ``security`` says so. Node-to-node channels
pass none: they use the *process default* (:func:`set_default_security`), which a node sets
from its ``[security]`` section when it starts, so every channel it opens (Raft peers,
controller RPCs, replication fetches, transaction markers) presents the node's certificate
without that being threaded through every component. Clients pass their own.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, unquote

import grpc
import structlog

from raftka.common.errors import ConfigFileError, InvalidConfigError
from raftka.common.limits import REQUEST_BYTE_LIMITS
from raftka.common.rpc.request_size import RequestSizeInterceptor
from raftka.common.security.listeners import Listener
from raftka.common.security.settings import SecuritySettings
from raftka.common.security.tls import ChannelSecurity, server_credentials

log = structlog.get_logger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""The largest gRPC message either end accepts (a produce request, a fetch response)."""

ChannelOption = tuple[str, int | str]

CHANNEL_OPTIONS: tuple[ChannelOption, ...] = (
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
)

SERVER_OPTIONS: tuple[ChannelOption, ...] = (
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
)


CLIENT_ID_KEY = "raftka-client-id"
"""Request metadata naming the client application (Kafka's ``client.id``); brokers log it.
Clients in any language may send it. The Python client puts it in its channels' user agent
instead (``raftka-client/<id>``), which costs nothing per call."""

USER_AGENT_PREFIX = "raftka-client/"
MAX_CLIENT_ID_LENGTH = 255


_default_security: ChannelSecurity | None = None


def set_default_security(security: ChannelSecurity | None) -> None:
    """The security of channels opened without one (a node's own, set once at start)."""
    global _default_security
    _default_security = security


def default_security() -> ChannelSecurity | None:
    return _default_security


class PlaintextTokenError(InvalidConfigError):
    """A bearer token would cross the network unencrypted."""


def open_channel(
    address: str,
    extra: Sequence[ChannelOption] = (),
    *,
    client_id: str = "",
    security: ChannelSecurity | None = None,
) -> grpc.aio.Channel:
    """An asyncio channel to ``address`` (``host:port``); ``extra`` options override ours.
    With ``client_id``, every call on the channel names it (see :data:`CLIENT_ID_KEY`).
    ``security`` None uses the process default (plaintext unless a node set one)."""
    options = dict(CHANNEL_OPTIONS)
    options.update(dict(extra))
    if client_id:
        options["grpc.primary_user_agent"] = USER_AGENT_PREFIX + quote(client_id, safe="")
    security = security or _default_security
    if security is None or not security.tls:
        if security is not None and security.token:
            raise PlaintextTokenError(
                f"refusing to send a bearer token to {address} over plaintext: set "
                "security.protocol=SASL_SSL (TLS) with ssl.ca.location"
            )
        return grpc.aio.insecure_channel(address, options=list(options.items()))
    return grpc.aio.secure_channel(
        address, security.channel_credentials(), options=list(options.items())
    )


def client_id_of(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The caller's client id (cut to 255 characters), or "" if it sent none."""
    user_agent = ""
    for key, value in context.invocation_metadata() or ():
        text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
        if key == CLIENT_ID_KEY:
            return text[:MAX_CLIENT_ID_LENGTH]
        if key == "user-agent":
            user_agent = text
    for token in user_agent.split():
        if token.startswith(USER_AGENT_PREFIX):
            return unquote(token[len(USER_AGENT_PREFIX) :])[:MAX_CLIENT_ID_LENGTH]
    return ""


def new_server(interceptors: Sequence[grpc.aio.ServerInterceptor] = ()) -> grpc.aio.Server:
    """An asyncio gRPC server with Raftka's server options and ``interceptors`` (in order),
    after the one that refuses oversized listing requests unparsed (request_size.py)."""
    return grpc.aio.server(
        interceptors=[RequestSizeInterceptor(REQUEST_BYTE_LIMITS), *interceptors],
        options=list(SERVER_OPTIONS),
    )


class PlaintextRefusedError(ConfigFileError):
    """A node was asked to listen without TLS on an address others can reach."""


def is_loopback_address(address: str) -> bool:
    """Whether ``host:port`` (or ``[v6]:port``) listens on loopback only."""
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name (or "" / "*"): may resolve anywhere


def check_plaintext_allowed(address: str, settings: SecuritySettings) -> None:
    """Secure by default: plaintext only on loopback, unless the config allows it."""
    if settings.tls_enabled or settings.allow_plaintext or is_loopback_address(address):
        return
    raise PlaintextRefusedError(
        f"refusing to listen on {address} without TLS: it is not a loopback address, so "
        "anyone who can reach it could read and forge traffic. Set security.tls_cert_file, "
        "security.tls_key_file and security.tls_ca_file, or, on a network you trust, "
        "security.allow_plaintext = true"
    )


def add_listener(server: grpc.aio.Server, address: str, settings: SecuritySettings) -> int:
    """Listen on ``address`` with TLS when ``settings`` configure it (else plaintext, where
    allowed); returns the port. Raises OSError when the port cannot be bound."""
    check_plaintext_allowed(address, settings)
    if settings.tls_enabled:
        port = int(server.add_secure_port(address, server_credentials(settings)))
    else:
        port = int(server.add_insecure_port(address))
    if port == 0:
        raise OSError(f"cannot listen on {address}: is another process using the port?")
    if settings.allow_plaintext and not settings.tls_enabled and not is_loopback_address(address):
        log.warning("listening_without_tls", address=address, reason="security.allow_plaintext")
    return port


def add_listeners(server: grpc.aio.Server, listeners: Sequence[Listener]) -> None:
    """Listen on each of a role's listeners (one server, one port each, each with its own
    client authentication: :mod:`raftka.common.security.listeners`)."""
    for listener in listeners:
        add_listener(server, listener.address, listener.settings)
        log.info(
            "listening",
            listener=listener.name,
            address=listener.address,
            tls=listener.settings.tls_enabled,
            client_auth=listener.settings.client_auth if listener.settings.tls_enabled else None,
            serves_clients=listener.serves_clients,
            serves_nodes=listener.serves_nodes,
        )
