"""Metadata refreshes for the consumer: coalesced (one in flight), rate-limited (a backoff
that grows while refreshes keep being asked for without a fetch succeeding), periodic (every
``metadata_max_age_ms``), and the record of whether any broker answers at all."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from raftka.client.metadata_cache import MetadataCache
from raftka.common.errors import RaftkaError
from raftka.common.rpc.retry import RetryPolicy
from raftka.common.tasks import cancel_and_wait

log = structlog.get_logger(__name__)


class MetadataRefresher:
    def __init__(
        self,
        metadata: MetadataCache,
        topics: Callable[[], set[str]],
        *,
        retry: RetryPolicy,
        max_age_s: float,
        request_timeout_s: float,
        on_done: Callable[[bool], None],
        clock: Callable[[], float],
    ) -> None:
        """``topics``: what to refresh (the assigned topics); ``on_done(ok)``: called after
        every refresh."""
        self._metadata = metadata
        self._topics = topics
        self._retry = retry
        self._max_age_s = max_age_s
        self._request_timeout_s = request_timeout_s
        self._on_done = on_done
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.wanted = False
        """A refresh was asked for while the backoff did not allow one yet."""
        self._streak = 0
        self._allowed_at = float("-inf")
        self._refreshed_at = float("-inf")
        self._unreachable_since: float | None = None
        self._unreachable: RaftkaError | None = None
        self._closed = False

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def reachable(self) -> bool:
        """False while refreshes fail (no broker answers)."""
        return self._unreachable_since is None

    def progress(self) -> None:
        """A fetch succeeded: the next refresh need not wait long."""
        self._streak = 0

    def request(self) -> None:
        """Refresh now, unless one is in flight (its answer may be stale: whatever still fails
        asks again) or the backoff says later (then :meth:`next_time` says when)."""
        if self.running or self._closed:
            return
        self.wanted = True
        if self._clock() < self._allowed_at:
            return
        self.wanted = False
        self._task = asyncio.ensure_future(self._refresh())

    def due(self, now: float) -> bool:
        """Asked for, or older than ``metadata_max_age_ms``."""
        return self.wanted or (not self.running and now - self._refreshed_at >= self._max_age_s)

    def next_time(self) -> float | None:
        """When :meth:`due` may next become true on its own."""
        if self.running:
            return None
        if self.wanted:
            return self._allowed_at
        return self._refreshed_at + self._max_age_s

    def connection_error(self) -> RaftkaError | None:
        """The last refresh error once no broker has answered for ``request_timeout_ms``
        (poll() raises it; then the clock starts again, so it is raised once per timeout)."""
        since, now = self._unreachable_since, self._clock()
        if since is None or now - since < self._request_timeout_s:
            return None
        self._unreachable_since = now
        return self._unreachable

    async def _refresh(self) -> None:
        self._streak += 1
        ok = False
        try:
            await self._metadata.refresh(self._topics())
            ok = True
            self._unreachable_since, self._unreachable = None, None
        except RaftkaError as e:
            if self._unreachable_since is None:
                log.warning("consumer_metadata_refresh_failed", error=e.message)
                self._unreachable_since = self._clock()
            self._unreachable = e
        finally:
            now = self._clock()
            self._refreshed_at = now
            self._allowed_at = now + self._retry.backoff(self._streak)
            self._on_done(ok)

    async def close(self) -> None:
        self._closed = True
        await cancel_and_wait([self._task])
