"""Keeps a client's metadata fresh by following the controllers' WatchMetadata stream: every
committed metadata change (a leader moved, partitions added, a topic created or deleted)
triggers a refresh of the cache from the brokers, so the client rarely has to learn of a
change from a failed request. Optional: clients without it refresh on errors and periodically.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import grpc
import structlog

from raftka.common.errors import RaftkaError
from raftka.common.rpc.controller_client import ControllerClient
from raftka.common.rpc.retry import RetryPolicy
from raftka.common.security.tls import ChannelSecurity

log = structlog.get_logger(__name__)


async def follow_metadata_changes(
    controllers: Sequence[str],
    on_change: Callable[[], Awaitable[None]],
    security: ChannelSecurity | None = None,
) -> None:
    """Call ``on_change`` after each committed metadata change, forever (a background task)."""
    retry = RetryPolicy()
    async with ControllerClient(list(controllers), timeout_s=10.0, security=security) as client:
        index = -1
        attempt = 0
        while True:
            try:
                if index < 0:
                    index = (await client.describe_quorum(allow_follower=True)).commit_index
                async for event in client.watch_metadata(index, attempt):
                    attempt = 0
                    kind = event.WhichOneof("event")
                    if kind == "delta":
                        index = max(index, event.delta.index)
                        await _notify(on_change)
                    elif kind == "snapshot" and event.snapshot.last:
                        index = max(index, event.snapshot.last_index)
                        await _notify(on_change)
                    elif kind == "progress":
                        index = max(index, event.progress.commit_index)
            except (grpc.aio.AioRpcError, RaftkaError) as e:
                log.debug("metadata_watch_broken", error=str(e)[:200])
            attempt += 1
            await asyncio.sleep(retry.backoff(attempt))


async def _notify(on_change: Callable[[], Awaitable[None]]) -> None:
    try:
        await on_change()
    except RaftkaError as e:
        log.warning("metadata_refresh_failed", error=e.message)
