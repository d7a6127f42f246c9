"""What send() and send_many() give back: handles that resolve from their batch's one outcome.

A record's :class:`RecordDelivery` is one small object (two slots and a flag) pointing at its
batch and its index there. Nothing per record happens when the batch is answered: the batch
records its base offset (or its error) once, and a delivery's ``RecordMetadata`` is computed
when asked for. Per-record work at completion is only what the caller asked for: callbacks it
added, or an ``await`` (which waits on a future of its own, so cancelling the awaiting task
does not disturb other records of the batch).

A delivery behaves as an asyncio future of ``RecordMetadata`` for the code that meets one:
``await``, ``asyncio.gather``, ``asyncio.wait``, ``asyncio.wait_for``, ``asyncio.shield``,
``add_done_callback``, ``result()``, ``exception()``, ``done()``, ``cancel()``. Two
differences: callbacks of one batch run together from one event-loop callback (not one each),
and in the caller's context only when it passes ``context=``. Cancelling a delivery (or the
wait_for around it) stops waiting for it; the record itself may still be written, as with an
asyncio future of today's send(), since it may already be on its way.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from raftka.client.types import RecordMetadata

if TYPE_CHECKING:
    from raftka.client.producer.batch import ProducerBatch

DoneCallback = Callable[[Any], object]


class RecordDelivery:
    """The outcome of one record: awaitable, and future-like (see the module docstring)."""

    __slots__ = ("_batch", "_cancelled", "_index")

    _asyncio_future_blocking = False
    """Marks a future-like object for asyncio (``asyncio.isfuture``), which then uses it as
    it is instead of wrapping it in a task. A delivery is never yielded to the event loop
    itself (``await`` waits on a real future), so this stays False."""
    _cancel_message = None

    def __init__(self, batch: ProducerBatch, index: int) -> None:
        self._batch = batch
        self._index = index
        self._cancelled = False

    def __repr__(self) -> str:
        state = "cancelled" if self._cancelled else self._batch.state_name
        return f"<RecordDelivery {self._batch.tp} #{self._index} {state}>"

    def done(self) -> bool:
        return self._cancelled or self._batch.settled

    def cancelled(self) -> bool:
        return self._cancelled

    def result(self) -> RecordMetadata:
        """Where the record was written; raises what failed it (or InvalidStateError while
        it is not answered yet)."""
        if self._cancelled:
            raise asyncio.CancelledError()
        return self._batch.metadata(self._index)

    def exception(self) -> BaseException | None:
        if self._cancelled:
            raise asyncio.CancelledError()
        return self._batch.outcome_error()

    def add_done_callback(
        self, fn: DoneCallback, *, context: contextvars.Context | None = None
    ) -> None:
        """``fn(delivery)`` once the record is answered (or this delivery cancelled), from the
        event loop (never inside this call)."""
        if self.done():
            asyncio.get_running_loop().call_soon(fn, self, context=context)
        else:
            self._batch.on_settled(self, fn, self, context)

    def remove_done_callback(self, fn: DoneCallback) -> int:
        return self._batch.remove_callbacks(self, fn)

    def cancel(self, msg: Any | None = None) -> bool:
        """Stop waiting for the record: its callbacks run now, cancelled. The record may still
        be written (it may be on its way already). False if it was already answered."""
        if self.done():
            return False
        self._cancelled = True
        self._batch.run_callbacks_of(self)
        return True

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def _make_cancelled_error(self) -> asyncio.CancelledError:
        return asyncio.CancelledError()

    def __await__(self) -> Generator[Any, None, RecordMetadata]:
        if not self.done():
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._batch.on_settled(self, _wake, waiter, None)
            try:
                yield from waiter
            finally:
                if not waiter.done():  # the awaiting task was cancelled
                    self._batch.remove_callbacks(self, _wake)
        return self.result()

    __iter__ = __await__


class DeliveryGroup:
    """The outcome of the records of one send_many() call, in the order given.

    ``await group`` gives their ``RecordMetadata`` list once every record is answered, or
    raises the first failure (as ``asyncio.gather`` would); ``failures()`` lists every failed
    record. No object per record exists until asked for (``deliveries()``, ``results()``).
    """

    __slots__ = ("_callbacks", "_count", "_pending", "_spans")

    def __init__(self) -> None:
        self._spans: list[tuple[ProducerBatch, int, int]] = []
        """(batch, first index, record count) in send order."""
        self._pending = 0
        """Batches of the group not answered yet."""
        self._callbacks: list[tuple[DoneCallback, object, contextvars.Context | None]] = []
        self._count = 0

    def _add(self, batch: ProducerBatch, first: int, count: int) -> None:
        """(The producer's side.) ``count`` records of ``batch`` from index ``first``."""
        self._count += count
        spans = self._spans
        if spans and spans[-1][0] is batch:
            b, start, n = spans[-1]
            spans[-1] = (b, start, n + count)
            return
        spans.append((batch, first, count))
        if not batch.settled:
            self._pending += 1
            batch.on_settled(None, _span_settled, self, None)

    def __len__(self) -> int:
        return self._count

    def done(self) -> bool:
        return self._pending == 0

    def cancelled(self) -> bool:
        return False

    def exception(self) -> BaseException | None:
        """The first failure among the records (None if every one was written); raises
        InvalidStateError while some are not answered."""
        if not self.done():
            raise asyncio.InvalidStateError("some records of the group are not answered yet")
        for batch, _first, _n in self._spans:
            error = batch.outcome_error()
            if error is not None:
                return error
        return None

    def failures(self) -> list[tuple[int, BaseException]]:
        """(index in the group, error) of every failed record."""
        out: list[tuple[int, BaseException]] = []
        at = 0
        for batch, _first, n in self._spans:
            error = batch.outcome_error()
            if error is not None:
                out.extend((at + i, error) for i in range(n))
            at += n
        return out

    def results(self) -> list[RecordMetadata]:
        """Every record's metadata, in order; raises the first failure."""
        error = self.exception()
        if error is not None:
            raise error
        return [batch.metadata(first + i) for batch, first, n in self._spans for i in range(n)]

    result = results

    def deliveries(self) -> Iterator[RecordDelivery]:
        """A :class:`RecordDelivery` per record, in order (made now, on demand)."""
        for batch, first, n in self._spans:
            for i in range(first, first + n):
                yield RecordDelivery(batch, i)

    def add_done_callback(
        self, fn: DoneCallback, *, context: contextvars.Context | None = None
    ) -> None:
        """``fn(group)`` once every record of the group is answered."""
        if self.done():
            asyncio.get_running_loop().call_soon(fn, self, context=context)
        else:
            self._callbacks.append((fn, self, context))

    def __await__(self) -> Generator[Any, None, list[RecordMetadata]]:
        if not self.done():
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._callbacks.append((_wake, waiter, None))
            yield from waiter
        return self.results()

    def _settled_one(self) -> None:
        self._pending -= 1
        if self._pending == 0:
            callbacks, self._callbacks = self._callbacks, []
            run_callbacks(callbacks)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _span_settled(group: DeliveryGroup) -> None:
    group._settled_one()


def run_callbacks(
    entries: Sequence[tuple[DoneCallback, object, contextvars.Context | None]],
) -> None:
    """Run ``fn(arg)`` for each entry; an exception in one is reported to the event loop's
    exception handler (as asyncio does for a future's callbacks) and the others still run."""
    loop: asyncio.AbstractEventLoop | None = None
    for fn, arg, context in entries:
        try:
            if context is None:
                fn(arg)
            else:
                context.run(fn, arg)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as e:  # reported, as asyncio reports them
            loop = loop or asyncio.get_running_loop()
            loop.call_exception_handler(
                {"message": f"Exception in producer delivery callback {fn!r}", "exception": e}
            )
