"""the searches of runs started together, sent together: a batch's gate.

the reconcile loop's batches (`worker.tasks.batch`) run their playlists side by
side. each run reaches its turbopuffer searches at its own moment (after its own
lock, its own reads), so the turn-by-turn sharing of `engine.coalescing_store`
sees few of them meet. a gate knows how many runs it waits for: a run's searches
wait at it until every other run still going waits there too; then all of them go
out together, in as few multi-query requests as the store takes (16 searches
each), one after another under one slot of turbopuffer's budget. a batch of eight
playlists, three searches each, is two requests instead of eight.

no timer: a run that never searches (its entry cached, its answer reused) leaves
the gate when it ends, and so lets the others through; a run waiting at the gate
waits at most for the other runs' steps before their own searches (a Redis round
trip, a statement), each bounded by its own timeout. the answers are the ones each
run would get alone: every search is its own subquery, with its own `top_k` and
exclusions, checked against them on the way back. the runs a request answers
resume in one turn of the event loop, so their hydrates meet in one statement too
(`engine.coalescing_catalog`).

a failed request fails every run in it, each with its own copy of the error (the
batch hands those runs off to tasks of their own); a run cancelled while it waits
gives up its place, and the others go without it. outside a gate (one task, the
API) a `GatedStore` is the store underneath, unchanged.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Generic

from engine.coalescing import own_copy
from engine.ports import MultiQueryStore, SubQuery, VectorStore
from engine.types import Candidate, Vector

Send = Callable[[list[Any]], Awaitable[list[list[Candidate]]]]


@dataclass(eq=False, slots=True)
class _Waiting:
    """one run's searches at the gate, and where their answers go."""

    subqueries: list[Any]
    send: Send  # the store's way of sending them (one store per gate in practice)
    answer: asyncio.Future[list[list[Candidate]]]


@dataclass(slots=True)
class GateStats:
    """what the gate sent, for tests and benchmarks."""

    searches: int = 0  # subqueries that went through the gate
    releases: int = 0  # times every run still going was waiting, and they went
    failed: int = 0  # releases whose request failed


@dataclass(eq=False)
class QueryGate:
    """the runs of one batch (`parties` of them), and their searches waiting to go."""

    parties: int
    stats: GateStats = field(default_factory=GateStats)
    _waiting: list[_Waiting] = field(default_factory=list)
    _sending: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.parties < 1:
            raise ValueError(f"a gate waits for at least one run, got {self.parties}")

    @contextmanager
    def taking_part(self) -> Iterator[None]:
        """the block is one of the gate's runs: its searches wait for the others' (in a
        task of its own, as `asyncio.gather` gives each run); leaving lets them go."""
        token = _current.set(self)
        try:
            yield
        finally:
            _current.reset(token)
            self.parties -= 1
            self._release_if_all_wait()

    async def wait(self, subqueries: list[Any], send: Send) -> list[list[Candidate]]:
        """these searches' answers, once every run still going waits here too."""
        loop = asyncio.get_running_loop()
        waiting = _Waiting(subqueries, send, loop.create_future())
        self._waiting.append(waiting)
        self.stats.searches += len(subqueries)
        self._release_if_all_wait()
        try:
            return await waiting.answer
        except asyncio.CancelledError:
            if waiting in self._waiting:  # not sent yet: the others go without it
                self._waiting.remove(waiting)
                self._release_if_all_wait()
            raise

    def _release_if_all_wait(self) -> None:
        if not self._waiting or len(self._waiting) < self.parties:
            return
        released, self._waiting = self._waiting, []
        self.stats.releases += 1
        by_send: dict[Send, list[_Waiting]] = {}
        for waiting in released:
            by_send.setdefault(waiting.send, []).append(waiting)
        loop = asyncio.get_running_loop()
        for send, group in by_send.items():
            # a context of its own: the request belongs to no run's budget or trace
            task = loop.create_task(
                _request(send, group, self.stats), context=contextvars.Context()
            )
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)


async def _request(send: Send, group: list[_Waiting], stats: GateStats) -> None:
    subqueries = [subquery for waiting in group for subquery in waiting.subqueries]
    try:
        answers = await send(subqueries)
    except asyncio.CancelledError:
        for waiting in group:
            waiting.answer.cancel()  # the loop is shutting down: so are the runs
        raise
    except Exception as error:  # every run in it gets its own copy
        stats.failed += 1
        for waiting in group:
            if not waiting.answer.done():
                waiting.answer.set_exception(own_copy(error))
        return
    start = 0
    for waiting in group:
        end = start + len(waiting.subqueries)
        if not waiting.answer.done():
            waiting.answer.set_result(answers[start:end])
        start = end


# the gate of the run this task belongs to (None: not one of a gate's runs)
_current: ContextVar[QueryGate | None] = ContextVar("query_gate", default=None)


class GatedStore(Generic[SubQuery]):
    """`engine.ports.VectorStore` whose searches wait at the current run's gate, if it
    has one, and are then sent by `searches` under `hold()` (turbopuffer's budget);
    everything else goes to `store` as it is."""

    def __init__(
        self,
        store: VectorStore,
        searches: MultiQueryStore[SubQuery],
        *,
        hold: Callable[[], AbstractAsyncContextManager[object]],
    ) -> None:
        self.store = store
        self.searches = searches
        self._hold = hold

    def __repr__(self) -> str:
        return f"GatedStore({self.store!r})"

    async def get_vectors(self, track_ids: Sequence[int]) -> dict[int, Vector]:
        return await self.store.get_vectors(track_ids)

    async def query_many(
        self, vectors: Sequence[Vector], *, top_k: int, exclude_ids: Iterable[int]
    ) -> list[list[Candidate]]:
        gate = _current.get()
        if gate is None or len(vectors) > self.searches.max_subqueries:
            return await self.store.query_many(vectors, top_k=top_k, exclude_ids=exclude_ids)
        # checked here, in the run: bad input fails this run, not the shared request
        subqueries = self.searches.subqueries(vectors, top_k=top_k, exclude_ids=exclude_ids)
        if not subqueries:
            return []
        return await self.shared_query(subqueries, gate)

    async def shared_query(
        self, subqueries: list[SubQuery], gate: QueryGate
    ) -> list[list[Candidate]]:
        """these searches, sent with the other runs' of `gate` (a method of its own so
        that a worker's traces wrap it: one span per run, its wait and its share)."""
        return await gate.wait(subqueries, self._send)

    async def _send(self, subqueries: list[SubQuery]) -> list[list[Candidate]]:
        """the searches in requests of at most `max_subqueries`, one after another
        under one hold (one slot: never two requests of a release in flight at once)."""
        size = self.searches.max_subqueries
        answers: list[list[Candidate]] = []
        async with self._hold():
            for start in range(0, len(subqueries), size):
                answers.extend(await self.searches.multi_query(subqueries[start : start + size]))
        return answers

    async def aclose(self) -> None:
        """close the store underneath, if it has anything to close."""
        closer = getattr(self.store, "aclose", None)
        if closer is not None:
            await closer()
