"""`recommend`: a playlist's track ids in, ranked (and, given a catalog, eligible
and hydrated) recommendations out. the one entry point the worker and the API share.

I/O is two store calls on the happy path: one id lookup for the playlist's
embeddings and one multi-query for all its query vectors. eligibility is
applied after ranking (DESIGN.md), so each query over-fetches; if too few
eligible tracks survive and the store had more to give, the queries are
repeated with a larger top_k (the embeddings are not fetched again).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from engine.errors import InvalidInputError
from engine.fusion import proportional_fuse, rrf_fuse
from engine.ports import TrackLookup, VectorsById, VectorStore
from engine.strategy import QueryPlan, plan_queries
from engine.types import MAX_LIST_ITEMS, Candidate, FusionMode, Strategy, Track

DEFAULT_LIMIT = 10  # an answer shows up to 10 (the worker asks for spares: engine.cache)
MAX_LIMIT = 100
OVERFETCH_FACTOR = 3  # candidates asked per query = limit * 3 + OVERFETCH_SLACK
OVERFETCH_SLACK = 10
TOP_K_GROWTH = 4  # when eligibility leaves too few, ask again for 4x as many
MAX_TOP_K = 1000  # an explicit bound on candidates per query (turbopuffer allows more)


@dataclass(frozen=True, slots=True)
class Recommendation:
    """what the engine decided and found for one playlist."""

    strategy: Strategy
    embedded_count: int  # N: the playlist's tracks with a usable embedding
    query_count: int  # query vectors sent (1, N, or the number of centroids)
    candidates: list[Candidate]  # best first; eligible only when a catalog was given
    tracks: list[Track] = field(default_factory=list)  # hydrated, when a catalog was given
    top_k: int = 0  # candidates asked per query in the last round

    @property
    def available(self) -> bool:
        """false when nothing in the playlist has an embedding (the UI hides the section)."""
        return self.strategy is not Strategy.NONE


def initial_top_k(limit: int) -> int:
    return min(limit * OVERFETCH_FACTOR + OVERFETCH_SLACK, MAX_TOP_K)


def plan_for(vectors_by_id: VectorsById, fusion: FusionMode) -> QueryPlan:
    """the query plan `recommend` uses: cluster sizes only when the fusion needs them."""
    return plan_queries(vectors_by_id, cluster_sizes=fusion is FusionMode.PROPORTIONAL)


def fuse(
    plan: QueryPlan,
    ranked_lists: Sequence[Sequence[Candidate]],
    mode: FusionMode,
    exclude: set[int],
) -> list[Candidate]:
    """the plan's candidate lists as one ranking of every candidate."""
    if mode is FusionMode.PROPORTIONAL:
        slots = sum(len(candidates) for candidates in ranked_lists)
        return proportional_fuse(ranked_lists, plan.weights, slots=slots, exclude=exclude)
    return rrf_fuse(ranked_lists, exclude=exclude)


async def recommend(
    track_ids: Sequence[int],
    store: VectorStore,
    *,
    limit: int = DEFAULT_LIMIT,
    fusion: FusionMode = FusionMode.RRF,
    catalog: TrackLookup | None = None,
) -> Recommendation:
    """rank recommendations for a playlist made of `track_ids` (its own tracks never return)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be within 1..{MAX_LIMIT}, got {limit}")
    playlist_ids = list(dict.fromkeys(track_ids))
    if len(playlist_ids) > MAX_LIST_ITEMS:
        raise InvalidInputError(f"a playlist has at most {MAX_LIST_ITEMS} tracks")
    if not playlist_ids:
        return Recommendation(Strategy.NONE, 0, 0, [])

    plan = plan_for(await store.get_vectors(playlist_ids), fusion)
    if not plan.vectors:
        return Recommendation(Strategy.NONE, plan.embedded_count, 0, [])

    exclude = set(playlist_ids)
    top_k = initial_top_k(limit)
    while True:
        ranked_lists = await store.query_many(plan.vectors, top_k=top_k, exclude_ids=playlist_ids)
        ranking = fuse(plan, ranked_lists, fusion, exclude)
        if catalog is None:
            return Recommendation(
                plan.strategy, plan.embedded_count, len(plan.vectors), ranking[:limit], top_k=top_k
            )
        tracks = await catalog.hydrate([candidate.track_id for candidate in ranking])
        store_exhausted = all(len(candidates) < top_k for candidates in ranked_lists)
        if len(tracks) >= limit or store_exhausted or top_k >= MAX_TOP_K:
            break
        top_k = min(top_k * TOP_K_GROWTH, MAX_TOP_K)

    tracks = tracks[:limit]
    by_id = {candidate.track_id: candidate for candidate in ranking}
    return Recommendation(
        plan.strategy,
        plan.embedded_count,
        len(plan.vectors),
        [by_id[track.id] for track in tracks],
        tracks,
        top_k=top_k,
    )
