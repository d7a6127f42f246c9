"""Every gRPC channel and server in Raftka is opened here, with one set of options.

Clients, brokers (replication fetches, controller RPCs) and controllers (Raft peers) all call
:func:`open_channel`; servers take :data:`SERVER_OPTIONS`. One place means one message-size
limit on both ends of every connection, and one place to add transport security.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, unquote

import grpc

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


def open_channel(
    address: str, extra: Sequence[ChannelOption] = (), *, client_id: str = ""
) -> grpc.aio.Channel:
    """An asyncio channel to ``address`` (``host:port``); ``extra`` options override ours.
    With ``client_id``, every call on the channel names it (see :data:`CLIENT_ID_KEY`)."""
    options = dict(CHANNEL_OPTIONS)
    options.update(dict(extra))
    if client_id:
        options["grpc.primary_user_agent"] = USER_AGENT_PREFIX + quote(client_id, safe="")
    return grpc.aio.insecure_channel(address, options=list(options.items()))


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
    """An asyncio gRPC server with Raftka's server options; ``interceptors`` run around every
    call, in order (e.g. common/metrics/rpc.py's metrics and request ids)."""
    return grpc.aio.server(options=list(SERVER_OPTIONS), interceptors=list(interceptors))
