"""calls of concurrent callers gathered into shared requests, one event-loop turn at a
time: the machinery `engine.coalescing_store` (turbopuffer's lookups and searches) and
`engine.coalescing_catalog` (plyr.fm's hydrate) share.

no timer: a batch is opened by the first call of a turn and sent by a callback
`call_soon` schedules then, after every call of that turn has joined; a lone call
goes out a loop step later as the very request it would have made alone. a batch is
one request: when full, the next call (or the rest of this one) opens another.

a failed request fails every caller in it with an error of the same type and
message (each its own copy, chained to the shared one); a caller in other
requests is unaffected. a caller cancelled while it waits gives up its own wait
only: the request runs on, in a task of its own, for the others (and is sent even
if all of them are gone: a cancellation is only seen after the send is scheduled).
that task runs in a fresh context: it belongs to no caller's trace or budget run.
what is pending is bounded by the callers waiting, and batches are per event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from engine.errors import PermanentError, TransientError

_Item = TypeVar("_Item")
_Answer = TypeVar("_Answer")


@dataclass
class CoalescingStats:
    """calls taken and requests sent, for logs, tests and benchmarks."""

    calls: int = 0  # get_vectors and query_many calls that went through the batches
    requests: int = 0  # shared requests sent for them
    bypassed: int = 0  # calls too large for one request, sent as they are


@dataclass(eq=False)
class _Outcome(Generic[_Answer]):
    """a request's answer or its error (kept in a result, so an error nobody is
    left to read is never reported as a future's unretrieved exception)."""

    answer: _Answer | None = None
    error: Exception | None = None


class _Batch(Generic[_Item, _Answer]):
    """one request being filled in this turn: its items, and who waits for it."""

    __slots__ = ("items", "outcome", "positions")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.items: list[_Item] = []
        self.positions: dict[Any, int] = {}  # item -> position (lookups: one id once)
        self.outcome: asyncio.Future[_Outcome[_Answer]] = loop.create_future()


Placed = list[tuple[_Batch[_Item, _Answer], list[int]]]


class Batches(Generic[_Item, _Answer]):
    """the open batch of each event loop, and the sending of every batch."""

    def __init__(
        self,
        capacity: int,
        send: Callable[[list[_Item]], Awaitable[_Answer]],
        stats: CoalescingStats,
        *,
        dedupe: bool,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"a request must hold at least one item, got {capacity}")
        self.capacity = capacity
        self._send = send
        self._stats = stats
        self._dedupe = dedupe
        # written from each loop's own thread, one key per loop: no lock needed
        self._open: dict[asyncio.AbstractEventLoop, _Batch[_Item, _Answer]] = {}
        self._running: set[asyncio.Task[None]] = set()  # strong references to the requests

    def join(self, items: Sequence[_Item]) -> Placed[_Item, _Answer]:
        """place `items` in this turn's batches (opening one when the open one is full);
        the batches they went into, each with the items' positions in it."""
        loop = asyncio.get_running_loop()
        batch = self._open.get(loop)
        placed: Placed[_Item, _Answer] = []
        positions: list[int] = []
        for item in items:
            if self._dedupe and batch is not None:
                known = batch.positions.get(item)
                if known is not None:
                    positions.append(known)
                    continue
            if batch is None or len(batch.items) >= self.capacity:
                if batch is not None and positions:
                    placed.append((batch, positions))
                    positions = []
                batch = self._opened(loop)
            if self._dedupe:
                batch.positions[item] = len(batch.items)
            positions.append(len(batch.items))
            batch.items.append(item)
        if batch is not None and positions:
            placed.append((batch, positions))
        return placed

    async def each(
        self, items: Sequence[_Item], alone: Callable[[list[_Item]], Awaitable[_Answer]]
    ) -> list[_Answer]:
        """the answers of the requests that carry `items`: this turn's shared ones, or,
        when `items` alone need more than one request, `alone(items)`'s (as they
        would be sent without sharing), each call counted as one or the other."""
        if len(items) > self.capacity:
            self._stats.bypassed += 1
            return [await alone(list(items))]
        self._stats.calls += 1
        return await self.answers(self.join(items))

    async def answers(self, placed: Placed[_Item, _Answer]) -> list[_Answer]:
        """the answers of the batches a caller joined, in order; the first failure
        among them is raised (a copy of it, chained to the shared error)."""
        answers: list[_Answer] = []
        for batch, _ in placed:
            # shielded: a caller cancelled here cancels its own wait, not the request
            outcome = await asyncio.shield(batch.outcome)
            if outcome.error is not None:
                own = own_copy(outcome.error)
                if own is outcome.error:
                    raise own
                raise own from outcome.error
            answers.append(cast(_Answer, outcome.answer))
        return answers

    def _opened(self, loop: asyncio.AbstractEventLoop) -> _Batch[_Item, _Answer]:
        batch: _Batch[_Item, _Answer] = _Batch(loop)
        for stale in [other for other in self._open if other.is_closed()]:
            del self._open[stale]  # a loop closed mid-turn: its batch never went out
        self._open[loop] = batch
        # after every call of this turn; in a context of its own (no caller's)
        loop.call_soon(self._go, loop, batch, context=contextvars.Context())
        return batch

    def _go(self, loop: asyncio.AbstractEventLoop, batch: _Batch[_Item, _Answer]) -> None:
        if self._open.get(loop) is batch:
            del self._open[loop]
        self._stats.requests += 1
        task = loop.create_task(self._request(batch))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _request(self, batch: _Batch[_Item, _Answer]) -> None:
        try:
            answer = await self._send(batch.items)
        except asyncio.CancelledError:
            batch.outcome.cancel()  # the loop is shutting down: so are its callers
            raise
        except Exception as error:  # every caller gets it, whatever it is
            batch.outcome.set_result(_Outcome(error=error))
        else:
            batch.outcome.set_result(_Outcome(answer=answer))


def own_copy(error: Exception) -> Exception:
    """`error` as a new exception of the same type and message, chained to it, for one
    caller (one exception object raised in several tasks would gather all their
    tracebacks)."""
    if isinstance(error, TransientError | PermanentError):
        try:
            own = copy.copy(error)
        except Exception:  # an error type that cannot be copied: shared as it is
            return error
        own.__cause__ = error
        return own
    return error
