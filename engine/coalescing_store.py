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

how (engine.coalescing): no timer, a batch per turn, one request a batch, a failure
reaching every caller of its request, a cancelled caller giving up its own wait
only. a caller whose searches or ids alone need more than one request bypasses the
batches (the store sends them as it always did, one request after the other), so a
batch never makes more requests than it has callers: under the shared budget
(`worker.store.store_budget`), where each caller holds a slot while it waits, the
requests in flight never outnumber the slots held.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Generic

import numpy as np

from engine.coalescing import Batches, CoalescingStats
from engine.ports import MultiQueryStore, SubQuery, VectorStore
from engine.types import Candidate, Vector


class CoalescingStore(Generic[SubQuery]):
    """`engine.ports.VectorStore` over a `MultiQueryStore`, sharing its requests
    between the calls of one turn of the event loop (the module's doc)."""

    def __init__(self, store: MultiQueryStore[SubQuery]) -> None:
        self.store = store
        self.stats = CoalescingStats()
        self._searches: Batches[SubQuery, list[list[Candidate]]] = Batches(
            store.max_subqueries, store.multi_query, self.stats, dedupe=False
        )
        self._lookups: Batches[int, dict[int, Vector]] = Batches(
            store.max_lookup_ids, store.get_vectors, self.stats, dedupe=True
        )

    def __repr__(self) -> str:
        return f"CoalescingStore({self.store!r})"

    async def get_vectors(self, track_ids: Sequence[int]) -> dict[int, Vector]:
        """this caller's ids' vectors, looked up with the other callers' of this turn."""
        wanted = list(dict.fromkeys(_plain_ids(track_ids)))  # a bad id fails its caller only
        if not wanted:
            return {}
        found: dict[int, Vector] = {}
        for answer in await self._lookups.each(wanted, self.store.get_vectors):
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
