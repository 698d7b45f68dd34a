"""`recommend`: a playlist's track ids in, ranked (and, given a catalog, eligible
and hydrated) recommendations out. the one entry point the worker and the API share.

I/O is two store calls on the happy path: one id lookup for the playlist's
embeddings and one multi-query for all its query vectors, then one hydrate of
the candidates. eligibility is applied after the store's ranking (DESIGN.md),
to the candidates before they are fused, so each query over-fetches; if too
few eligible tracks survive and the store had more to give, the queries are
repeated with a larger top_k (the embeddings are not fetched again).

the hydrate reads the head of each list first: the fusion places at most `limit`
candidates and asks about them in its lists' order, so it seldom looks past the
first `limit + HYDRATE_SLACK` of any list (3 x 115 candidates come back, about a
third are ever asked about). one that does reach past them stops, the rest are
hydrated, and the fusion runs again: the same answer as hydrating everything at
once (eligibility is a property of each track alone), in two statements.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import islice

from engine.cache import MAX_CACHED_TRACKS
from engine.consensus import consensus_fuse
from engine.errors import InvalidInputError
from engine.explain import nearest_query
from engine.fusion import proportional_fuse, rrf_fuse
from engine.ports import TrackLookup, VectorsById, VectorStore
from engine.strategy import QueryPlan, plan_queries
from engine.types import MAX_LIST_ITEMS, Because, Candidate, FusionMode, Strategy, Track

# how many tracks one recommendation ranks and hydrates (the engine's n, not the
# API's `limit`, which slices the cached answer): what the cache keeps, 10 to show,
# 20 more for "more" and a few spares for withdrawals (engine.cache)
DEFAULT_TOP_N = MAX_CACHED_TRACKS
MAX_TOP_N = 100
OVERFETCH_FACTOR = 3  # candidates asked per query = limit * 3 + OVERFETCH_SLACK
OVERFETCH_SLACK = 10
TOP_K_GROWTH = 4  # when eligibility leaves too few, ask again for 4x as many
MAX_TOP_K = 1000  # an explicit bound on candidates per query (turbopuffer allows more)
# ids per hydrate call: up to 16 lists of up to MAX_TOP_K candidates can be asked
# about, and the catalogs take at most 2000 ids a call (engine.eligibility)
HYDRATE_BATCH = 1000
# candidates past `limit` hydrated from the head of each list before the fusion runs
# (the module's doc): refused ones (ineligible, an artist over its cap) leave room
HYDRATE_SLACK = 15
# the production defaults, chosen with `python -m bench quality` (README, "Quality"):
# proportional slots keep a playlist's moods in its answer in their proportions, and
# setting strays aside keeps a centroid off the tracks that belong to no mood.
DEFAULT_FUSION = FusionMode.PROPORTIONAL
DEFAULT_STRAYS = True
# 2-5 tracks: False interleaves the tracks' lists one pick each; True gives each mood
# (tracks sharing neighbours) its slots and fills them with what the tracks agree on
# first (engine.consensus). a trade, measured with `python -m bench quality` (README,
# "Quality"): more precision on the CLAP-like world, a playlist's coverage less on the plain
DEFAULT_CONSENSUS = False
# plyr.fm's own rule for its "for you" feed: at most 2 tracks of one artist in an answer
DEFAULT_MAX_PER_ARTIST = 2


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


def plan_for(
    vectors_by_id: VectorsById, fusion: FusionMode, strays: bool = DEFAULT_STRAYS
) -> QueryPlan:
    """the query plan `recommend` uses: cluster sizes only when the fusion needs them."""
    return plan_queries(
        vectors_by_id, cluster_sizes=fusion is FusionMode.PROPORTIONAL, strays=strays
    )


def fuse(
    plan: QueryPlan,
    ranked_lists: Sequence[Sequence[Candidate]],
    mode: FusionMode,
    exclude: set[int],
    *,
    limit: int,
    accept: Callable[[Candidate], bool] | None = None,
    consensus: bool = DEFAULT_CONSENSUS,
) -> list[Candidate]:
    """the best `limit` candidates of the plan's lists, fused, that `accept` takes."""
    if mode is FusionMode.PROPORTIONAL and plan.strategy is Strategy.RRF and consensus:
        # one list per track (2-5 tracks): slots per mood, consensus first (engine.consensus)
        return consensus_fuse(ranked_lists, slots=limit, exclude=exclude, accept=accept)
    if mode is FusionMode.PROPORTIONAL:
        return proportional_fuse(
            ranked_lists, plan.weights, slots=limit, exclude=exclude, accept=accept
        )
    ranking = rrf_fuse(ranked_lists, exclude=exclude)
    if accept is not None:
        # asked in rank order until `limit` are taken, as the other fusions ask
        return list(islice((candidate for candidate in ranking if accept(candidate)), limit))
    return ranking[:limit]


async def recommend(
    track_ids: Sequence[int],
    store: VectorStore,
    *,
    limit: int = DEFAULT_TOP_N,
    fusion: FusionMode = DEFAULT_FUSION,
    catalog: TrackLookup | None = None,
    strays: bool = DEFAULT_STRAYS,
    max_per_artist: int | None = DEFAULT_MAX_PER_ARTIST,
    consensus: bool = DEFAULT_CONSENSUS,
) -> Recommendation:
    """rank recommendations for a playlist made of `track_ids` (its own tracks never return).

    the defaults are what the service serves. `strays=False` clusters every track,
    strays included (plyr.fm's original way). `max_per_artist` caps an artist's
    tracks in the answer, applied after eligibility (it needs the catalog's
    artists); None lifts it. `consensus=True` fuses the lists of a 2-5-track
    playlist by mood and consensus (engine.consensus) instead of one pick per
    track in turn.
    """
    if not 1 <= limit <= MAX_TOP_N:
        raise ValueError(f"limit must be within 1..{MAX_TOP_N}, got {limit}")
    if max_per_artist is not None and max_per_artist < 1:
        raise ValueError(f"max_per_artist must be at least 1, got {max_per_artist}")
    exclude = set(track_ids)
    # dict.fromkeys keeps the first of each id in order; only needed with duplicates
    playlist_ids = (
        list(track_ids) if len(exclude) == len(track_ids) else list(dict.fromkeys(track_ids))
    )
    if len(playlist_ids) > MAX_LIST_ITEMS:
        raise InvalidInputError(f"a playlist has at most {MAX_LIST_ITEMS} tracks")
    if not playlist_ids:
        return Recommendation(Strategy.NONE, 0, 0, [])

    plan = plan_for(await store.get_vectors(playlist_ids), fusion, strays)
    if not plan.vectors:
        return Recommendation(Strategy.NONE, plan.embedded_count, 0, [])
    # the playlist track each query vector stands for (engine.explain), hydrated with
    # the candidates in the same catalog call
    stands_for = plan.stands_for

    top_k = initial_top_k(limit)
    while True:
        ranked_lists = await store.query_many(plan.vectors, top_k=top_k, exclude_ids=playlist_ids)
        if catalog is None:
            ranking = fuse(plan, ranked_lists, fusion, exclude, limit=limit, consensus=consensus)
            return Recommendation(
                plan.strategy, plan.embedded_count, len(plan.vectors), ranking, top_k=top_k
            )
        # eligibility (and the artist cap) while the fusion hands out slots, not after:
        # a cluster's first pick lost to eligibility afterwards took its mood out of
        # the top 3 (`python -m bench quality`)
        head = wanted_ids(ranked_lists, exclude, also=stands_for, depth=limit + HYDRATE_SLACK)
        hydrated = set(head)
        eligible = await eligible_tracks(catalog, head)
        fused = partial(fuse, plan, ranked_lists, fusion, exclude, limit=limit, consensus=consensus)
        try:
            ranking = fused(accept=acceptance(eligible, max_per_artist, hydrated=hydrated))
        except NotHydrated:
            # the fusion reached past the heads: the rest, and the fusion again
            every = wanted_ids(ranked_lists, exclude, also=stands_for)
            eligible |= await eligible_tracks(catalog, [i for i in every if i not in hydrated])
            ranking = fused(accept=acceptance(eligible, max_per_artist))
        store_exhausted = all(len(candidates) < top_k for candidates in ranked_lists)
        if len(ranking) >= limit or store_exhausted or top_k >= MAX_TOP_K:
            break
        top_k = min(top_k * TOP_K_GROWTH, MAX_TOP_K)

    query_of = nearest_query(ranked_lists, {candidate.track_id for candidate in ranking})
    tracks = []
    for candidate in ranking:
        track = eligible[candidate.track_id]
        # a playlist track that is not surfaceable (private, taken down) explains nothing
        reason = eligible.get(stands_for[query_of[candidate.track_id]])
        if reason is not None:
            track = track.explained_by(Because(reason.id, reason.title))
        tracks.append(track)
    return Recommendation(
        plan.strategy, plan.embedded_count, len(plan.vectors), ranking, tracks, top_k=top_k
    )


class NotHydrated(Exception):  # a signal inside `recommend`, never an error
    """the fusion asked about a candidate the first hydrate did not read."""


def acceptance(
    eligible: dict[int, Track], cap: int | None, *, hydrated: Container[int] | None = None
) -> Callable[[Candidate], bool]:
    """whether a candidate may take the next slot: eligible, and its artist (by handle,
    unique per account in the AT Protocol) below `cap` tracks so far. with `hydrated`
    (the ids the catalog was asked about), a candidate outside it raises NotHydrated:
    its absence from `eligible` would say nothing."""
    per_artist: dict[str, int] = {}

    def accept(candidate: Candidate) -> bool:
        track = eligible.get(candidate.track_id)
        if track is None:
            if hydrated is not None and candidate.track_id not in hydrated:
                raise NotHydrated(candidate.track_id)
            return False
        if cap is None:
            return True
        count = per_artist.get(track.artist_handle, 0)
        if count >= cap:
            return False
        per_artist[track.artist_handle] = count + 1
        return True

    return accept


def wanted_ids(
    ranked_lists: Sequence[Sequence[Candidate]],
    exclude: set[int],
    *,
    also: Sequence[int] = (),
    depth: int | None = None,
) -> list[int]:
    """the ids to hydrate, each once: every list's candidates (its first `depth` not
    excluded, with a depth), in list order, then `also` (playlist tracks whose titles
    explain picks: never picked, they are excluded from the fusion)."""
    ids: dict[int, None] = {}
    for candidates in ranked_lists:
        kept = 0
        for candidate in candidates:
            if depth is not None and kept >= depth:
                break
            if candidate.track_id not in exclude:
                ids[candidate.track_id] = None
                kept += 1
    for track_id in also:
        ids[track_id] = None
    return list(ids)


async def eligible_tracks(catalog: TrackLookup, ids: Sequence[int]) -> dict[int, Track]:
    """the eligible tracks among `ids`, hydrated, by id."""
    eligible: dict[int, Track] = {}
    for start in range(0, len(ids), HYDRATE_BATCH):
        for track in await catalog.hydrate(ids[start : start + HYDRATE_BATCH]):
            eligible[track.id] = track
    return eligible
