"""Which clients a broker serves: each new (client id, address) pair is logged once.

Clients name themselves with Kafka's ``client.id`` (common/rpc/channels.py): the broker logs
``client_seen`` the first time a pair calls, so an operator can tell whose requests are
arriving without a log line per request. The memory is bounded: the oldest pairs are
forgotten first (and logged again if they come back).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import grpc
import structlog

from raftka.common.rpc.channels import client_id_of

log = structlog.get_logger(__name__)

MAX_REMEMBERED_CLIENTS = 10_000


class ClientLog:
    def __init__(self, capacity: int = MAX_REMEMBERED_CLIENTS) -> None:
        self._capacity = capacity
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()

    def saw(self, context: grpc.aio.ServicerContext[Any, Any], method: str) -> str:
        """Note a call; returns the caller's client id ("" when it sent none)."""
        client_id = client_id_of(context)
        key = (client_id, str(context.peer()))
        if key in self._seen:
            self._seen.move_to_end(key)
            return client_id
        self._seen[key] = None
        if len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
        log.info("client_seen", client_id=client_id or None, peer=key[1], first_call=method)
        return client_id

    def __len__(self) -> int:
        return len(self._seen)
