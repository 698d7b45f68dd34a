"""`engine.query_gate`: when a batch's searches go out, and how their answers and
failures come back (pure coordination, over a recording store; the gate against
the real turbopuffer client is in tests/test_reconcile_batch.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager

import numpy as np
import pytest

from engine.ports import TransientStoreError
from engine.query_gate import GatedStore, QueryGate
from engine.types import Candidate, Vector


class RecordingStore:
    """a `MultiQueryStore` whose search for vector v answers one candidate, id v[0]
    (plus its top_k as the distance), and which records every request."""

    max_subqueries = 4
    max_lookup_ids = 100

    def __init__(self) -> None:
        self.requests: list[list[tuple[int, int]]] = []
        self.plain: list[int] = []  # query_many calls made outside a gate (their sizes)
        self.fail_with: Exception | None = None

    def subqueries(
        self, vectors: Sequence[Vector], *, top_k: int, exclude_ids: Iterable[int]
    ) -> list[tuple[int, int]]:
        if top_k < 1:
            raise ValueError("top_k must be positive")
        return [(int(vector[0]), top_k) for vector in vectors]

    async def multi_query(self, subqueries: Sequence[tuple[int, int]]) -> list[list[Candidate]]:
        self.requests.append(list(subqueries))
        await asyncio.sleep(0)
        if self.fail_with is not None:
            raise self.fail_with
        return [[Candidate(track_id, float(top_k))] for track_id, top_k in subqueries]

    async def get_vectors(self, track_ids: Sequence[int]) -> dict[int, Vector]:
        return {track_id: np.full(2, track_id, dtype=np.float32) for track_id in track_ids}

    async def query_many(
        self, vectors: Sequence[Vector], *, top_k: int, exclude_ids: Iterable[int]
    ) -> list[list[Candidate]]:
        self.plain.append(len(vectors))
        return [[Candidate(int(vector[0]), float(top_k))] for vector in vectors]


class Holds:
    """the budget's stand-in: counts the holds, and how many are held at once."""

    def __init__(self) -> None:
        self.taken = 0
        self.held = 0

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        self.taken += 1
        self.held += 1
        try:
            yield
        finally:
            self.held -= 1


def vectors(*ids: int) -> list[Vector]:
    return [np.full(2, track_id, dtype=np.float32) for track_id in ids]


@pytest.fixture
def store() -> RecordingStore:
    return RecordingStore()


@pytest.fixture
def holds() -> Holds:
    return Holds()


@pytest.fixture
def gated(store: RecordingStore, holds: Holds) -> GatedStore[tuple[int, int]]:
    return GatedStore(store, store, hold=holds.hold)


async def test_the_searches_wait_until_every_run_waits_then_go_out_together(
    store: RecordingStore, holds: Holds, gated: GatedStore[tuple[int, int]]
) -> None:
    gate = QueryGate(3)
    arrived = asyncio.Event()

    async def run(ids: tuple[int, ...], *, late: bool = False) -> list[list[Candidate]]:
        with gate.taking_part():
            if late:
                await arrived.wait()
            return await gated.query_many(vectors(*ids), top_k=5, exclude_ids=[])

    first = asyncio.ensure_future(run((1, 2)))
    second = asyncio.ensure_future(run((3,)))
    third = asyncio.ensure_future(run((4, 5, 6), late=True))
    for _ in range(5):
        await asyncio.sleep(0)
    assert store.requests == []  # two of three wait: nothing has gone
    arrived.set()
    answers = await asyncio.gather(first, second, third)
    # six searches, four a request, one after another under one hold
    assert store.requests == [[(1, 5), (2, 5), (3, 5), (4, 5)], [(5, 5), (6, 5)]]
    assert holds.taken == 1
    assert [[c.track_id for [c] in answer] for answer in answers] == [[1, 2], [3], [4, 5, 6]]
    assert gate.stats.searches == 6
    assert gate.stats.releases == 1
    assert store.plain == []


async def test_a_run_that_ends_without_searching_lets_the_others_go(
    store: RecordingStore, gated: GatedStore[tuple[int, int]]
) -> None:
    gate = QueryGate(2)
    done = asyncio.Event()

    async def cached() -> None:
        with gate.taking_part():
            await done.wait()  # its entry was cached: it never searches

    async def searching() -> list[list[Candidate]]:
        with gate.taking_part():
            return await gated.query_many(vectors(7), top_k=3, exclude_ids=[])

    other = asyncio.ensure_future(cached())
    answer = asyncio.ensure_future(searching())
    await asyncio.sleep(0.01)
    assert not answer.done()  # it waits for the other run
    done.set()
    assert [c.track_id for [c] in await answer] == [7]
    await other
    assert store.requests == [[(7, 3)]]


async def test_a_run_cancelled_at_the_gate_gives_up_its_place(
    store: RecordingStore, gated: GatedStore[tuple[int, int]]
) -> None:
    gate = QueryGate(3)
    blocked = asyncio.Event()

    async def run(ids: tuple[int, ...], *, block: bool = False) -> list[list[Candidate]]:
        with gate.taking_part():
            if block:
                await blocked.wait()
            return await gated.query_many(vectors(*ids), top_k=2, exclude_ids=[])

    cancelled = asyncio.ensure_future(run((1,)))
    kept = asyncio.ensure_future(run((2,)))
    slow = asyncio.ensure_future(run((3,), block=True))
    await asyncio.sleep(0.01)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    blocked.set()
    assert [c.track_id for [c] in await kept] == [2]
    assert [c.track_id for [c] in await slow] == [3]
    assert store.requests == [[(2, 2), (3, 2)]]  # without the cancelled run's search


async def test_a_failed_request_fails_each_run_in_it_with_its_own_copy(
    store: RecordingStore, gated: GatedStore[tuple[int, int]]
) -> None:
    gate = QueryGate(2)
    store.fail_with = TransientStoreError("turbopuffer query_many failed: HTTP 503")

    async def run(track_id: int) -> list[list[Candidate]]:
        with gate.taking_part():
            return await gated.query_many(vectors(track_id), top_k=1, exclude_ids=[])

    outcomes = await asyncio.gather(run(1), run(2), return_exceptions=True)
    assert all(isinstance(outcome, TransientStoreError) for outcome in outcomes)
    first, second = outcomes
    assert first is not second  # each its own, chained to the shared one
    assert isinstance(first, BaseException)
    assert first.__cause__ is store.fail_with
    assert str(first) == str(store.fail_with)
    assert gate.stats.failed == 1
    # the gate is open again: a later search of a run goes out
    store.fail_with = None
    again = QueryGate(1)
    with again.taking_part():
        [[candidate]] = await gated.query_many(vectors(9), top_k=1, exclude_ids=[])
    assert candidate.track_id == 9


async def test_bad_input_fails_its_own_run_only(
    store: RecordingStore, gated: GatedStore[tuple[int, int]]
) -> None:
    gate = QueryGate(2)

    async def run(top_k: int) -> list[list[Candidate]]:
        with gate.taking_part():
            return await gated.query_many(vectors(4), top_k=top_k, exclude_ids=[])

    bad, good = await asyncio.gather(run(0), run(3), return_exceptions=True)
    assert isinstance(bad, ValueError)
    assert good == [[Candidate(4, 3.0)]]


async def test_outside_a_gate_or_too_many_vectors_the_store_is_asked_as_it_is(
    store: RecordingStore, holds: Holds, gated: GatedStore[tuple[int, int]]
) -> None:
    [[alone]] = await gated.query_many(vectors(5), top_k=2, exclude_ids=[])
    assert alone == Candidate(5, 2.0)
    with QueryGate(1).taking_part():
        answer = await gated.query_many(vectors(1, 2, 3, 4, 5), top_k=2, exclude_ids=[])
    assert [c.track_id for [c] in answer] == [1, 2, 3, 4, 5]
    assert store.plain == [1, 5]  # not through the gate: the store's own way (its budget)
    assert store.requests == []
    assert holds.taken == 0
    assert await gated.get_vectors([3]) == {3: pytest.approx(np.full(2, 3.0))}


def test_a_gate_waits_for_at_least_one_run() -> None:
    with pytest.raises(ValueError, match="at least one"):
        QueryGate(0)
