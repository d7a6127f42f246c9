"""Every gRPC channel and server in Raftka is opened here, with one set of options.

Clients, brokers (replication fetches, controller RPCs) and controllers (Raft peers) all call
:func:`open_channel`; servers take :data:`SERVER_OPTIONS`. One place means one message-size
limit on both ends of every connection, and one place to add transport security.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def open_channel(address: str, extra: Sequence[ChannelOption] = ()) -> grpc.aio.Channel:
    """An asyncio channel to ``address`` (``host:port``); ``extra`` options override ours."""
    options = dict(CHANNEL_OPTIONS)
    options.update(dict(extra))
    return grpc.aio.insecure_channel(address, options=list(options.items()))


def new_server() -> grpc.aio.Server:
    """An asyncio gRPC server with Raftka's server options."""
    return grpc.aio.server(options=list(SERVER_OPTIONS))
