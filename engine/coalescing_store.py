"""concurrent callers' vector-store calls sent as shared requests.

a worker runs many recomputes at once (a cold deploy, a reconcile burst), and each
makes two turbopuffer requests: an id lookup (`get_vectors`) and a multi-query
(`query_many`). a request costs the client a fixed ~0.7 ms of CPU whatever its
size, so the calls that arrive in the same turn of the event loop are sent
together: every caller's searches in one multi-query (each keeps its own
exclusions and `top_k`: turbopuffer runs each sub-query on its own), every
caller's ids in one lookup, and each caller gets back exactly its own part.

    caller A ──┐                       ┌── A's answers
    caller B ──┼─ one batch per turn ──┼── B's answers
    caller C ──┘   (≤ 16 searches, or  └── C's answers
                    ≤ 500 ids, a request)

no timer: a batch is opened by the first call of a turn and sent by a callback
`call_soon` schedules then, after every call of that turn has joined. a lone call
goes out a loop step later as the very request it would have made alone. a batch is one
request: when full, the next call (or the rest of this one) opens another. a
caller whose searches or ids alone need more than one request bypasses the
batches (the store sends them as it always did, one request after the other), so
a batch never makes more requests than it has callers: under the shared budget
(`worker.store.store_budget`), where each caller holds a slot while it waits, the
requests in flight never outnumber the slots held.

a failed request fails every caller in it with an error of the same type and
message (each its own copy, chained to the shared one); a caller in other
requests is unaffected. a caller cancelled while it waits gives up its own wait
only: the request runs on, in a task of its own, for the others (and is sent even
if all of them are gone: a cancellation is only seen after the send is scheduled).
that task runs in a fresh context: it belongs to no caller's trace or budget run.

what is pending is bounded by the callers waiting: each holds its place in at most
two batches, and each batch is one request's worth. batches are per event loop
(the worker and the API may call one store from loops in different threads).
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

import numpy as np

from engine.ports import MultiQueryStore, SubQuery, VectorStore, VectorStoreError
from engine.types import Candidate, Vector

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


_Placed = list[tuple[_Batch[_Item, _Answer], list[int]]]


class _Batches(Generic[_Item, _Answer]):
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

    def join(self, items: Sequence[_Item]) -> _Placed[_Item, _Answer]:
        """place `items` in this turn's batches (opening one when the open one is full);
        the batches they went into, each with the items' positions in it."""
        loop = asyncio.get_running_loop()
        batch = self._open.get(loop)
        placed: _Placed[_Item, _Answer] = []
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

    async def answers(self, placed: _Placed[_Item, _Answer]) -> list[_Answer]:
        """the answers of the batches a caller joined, in order; the first failure
        among them is raised (a copy of it, chained to the shared error)."""
        answers: list[_Answer] = []
        for batch, _ in placed:
            # shielded: a caller cancelled here cancels its own wait, not the request
            outcome = await asyncio.shield(batch.outcome)
            if outcome.error is not None:
                own = _own_copy(outcome.error)
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


class CoalescingStore(Generic[SubQuery]):
    """`engine.ports.VectorStore` over a `MultiQueryStore`, sharing its requests
    between the calls of one turn of the event loop (the module's doc)."""

    def __init__(self, store: MultiQueryStore[SubQuery]) -> None:
        self.store = store
        self.stats = CoalescingStats()
        self._searches: _Batches[SubQuery, list[list[Candidate]]] = _Batches(
            store.max_subqueries, store.multi_query, self.stats, dedupe=False
        )
        self._lookups: _Batches[int, dict[int, Vector]] = _Batches(
            store.max_lookup_ids, store.get_vectors, self.stats, dedupe=True
        )

    def __repr__(self) -> str:
        return f"CoalescingStore({self.store!r})"

    async def get_vectors(self, track_ids: Sequence[int]) -> dict[int, Vector]:
        """this caller's ids' vectors, looked up with the other callers' of this turn."""
        wanted = list(dict.fromkeys(_plain_ids(track_ids)))  # a bad id fails its caller only
        if not wanted:
            return {}
        if len(wanted) > self._lookups.capacity:
            self.stats.bypassed += 1
            return await self.store.get_vectors(wanted)
        self.stats.calls += 1
        found: dict[int, Vector] = {}
        for answer in await self._lookups.answers(self._lookups.join(wanted)):
            found.update(answer)
        # the shared answers hold other callers' ids too
        return {track_id: found[track_id] for track_id in wanted if track_id in found}

    async def query_many(
        self, vectors: Sequence[Vector], *, top_k: int, exclude_ids: Iterable[int]
    ) -> list[list[Candidate]]:
        """this caller's searches, sent with the other callers' of this turn."""
        if len(vectors) > self._searches.capacity:
            self.stats.bypassed += 1
            return await self.store.query_many(vectors, top_k=top_k, exclude_ids=exclude_ids)
        # checked here, in the caller: bad input fails this caller, not a shared request
        subqueries = self.store.subqueries(vectors, top_k=top_k, exclude_ids=exclude_ids)
        if not subqueries:
            return []
        self.stats.calls += 1
        placed = self._searches.join(subqueries)
        answers = await self._searches.answers(placed)
        return [
            answer[position]
            for answer, (_, positions) in zip(answers, placed, strict=True)
            for position in positions
        ]

    async def aclose(self) -> None:
        """close the store underneath, if it has anything to close."""
        closer = getattr(self.store, "aclose", None)
        if closer is not None:
            await closer()


def coalescing(store: VectorStore) -> VectorStore:
    """`store` behind a `CoalescingStore` if it can send several callers' searches at
    once (`MultiQueryStore`: turbopuffer), else `store` as it is."""
    if isinstance(store, MultiQueryStore):
        return CoalescingStore(store)
    return store


def _own_copy(error: Exception) -> Exception:
    """`error` as a new exception of the same type and message, for one caller (one
    exception object raised in several tasks would gather all their tracebacks)."""
    if isinstance(error, VectorStoreError):
        try:
            return copy.copy(error)
        except Exception:  # an error type that cannot be copied: shared as it is
            return error
    return error


def _plain_ids(track_ids: Iterable[Any]) -> list[int]:
    """the ids as plain ints; numpy integers welcome, anything else refused (a bool
    too: True == 1 would find track 1)."""
    given = list(track_ids)
    if all(type(track_id) is int for track_id in given):
        return given
    plain: list[int] = []
    for track_id in given:
        if isinstance(track_id, bool) or not isinstance(track_id, int | np.integer):
            raise TypeError(f"track ids are integers, got {track_id!r}")
        plain.append(int(track_id))
    return plain
