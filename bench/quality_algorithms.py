"""the algorithms the quality benchmark puts side by side, each as
`(track_ids, store, catalog, limit) -> ranked eligible track ids`.

- `seed`: plyr.fm's original algorithm (bench/baseline.py: random initial
  centroids, Lloyd's in Euclidean space, RRF), its k-means vectorised here
  with the very same steps so a 500-track playlist takes milliseconds, not seconds
  (`seed_kmeans` is tested against the pure-Python one);
- `mean`: one query, the mean of the playlist's embeddings;
- `engine.*`: `engine.recommend` with its defaults, or with one option changed.

every algorithm gets the same store, the same eligibility (the catalog's
hydrate, after ranking) and the same over-fetch as the engine, so only the
ranking differs.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from bench import baseline
from engine.exact_store import ExactStore
from engine.fusion import RRF_K
from engine.memory_catalog import InMemoryCatalog
from engine.recommend import MAX_TOP_K, TOP_K_GROWTH, initial_top_k, recommend
from engine.strategy import plan_queries
from engine.types import Candidate, FusionMode, Vector

Run = Callable[[Sequence[int], ExactStore, InMemoryCatalog, int], Awaitable[list[int]]]


@dataclass(frozen=True, slots=True)
class Algorithm:
    name: str
    description: str
    run: Run


def seed_kmeans(
    points: npt.NDArray[np.float64], k: int, rng: random.Random
) -> npt.NDArray[np.float64]:
    """baseline.kmeans step for step: k random points as centroids, assign to the
    nearest (the first on a tie), stop when the assignment repeats, an empty
    cluster keeps its centroid."""
    n = len(points)
    centroids = points[rng.sample(range(n), k)].copy()
    assignment: npt.NDArray[np.intp] | None = None
    for _ in range(baseline.MAX_ITERATIONS):
        distances = ((points[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
        new_assignment = distances.argmin(axis=1)
        if assignment is not None and np.array_equal(new_assignment, assignment):
            break
        assignment = new_assignment
        for j in range(k):
            members = points[assignment == j]
            if len(members):
                centroids[j] = members.mean(axis=0)
    return centroids


def _unit_rows(rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.where(norms > 0, rows / np.where(norms > 0, norms, 1.0), rows)


def seed_queries(vectors: list[Vector], rng: random.Random) -> list[Vector]:
    """baseline.query_vectors: 1..5 tracks -> each, 6+ -> min(3, N//2) centroids."""
    points = _unit_rows(np.asarray(vectors, dtype=np.float64))
    if len(points) <= 5:
        return [row.astype(np.float32) for row in points]
    centroids = _unit_rows(seed_kmeans(points, min(3, len(points) // 2), rng))
    return [row.astype(np.float32) for row in centroids]


async def ranked_eligible(
    queries: Sequence[Vector],
    fuse: Callable[[list[list[Candidate]]], list[Candidate]],
    track_ids: Sequence[int],
    store: ExactStore,
    catalog: InMemoryCatalog,
    limit: int,
) -> list[int]:
    """the engine's ranking loop around any query vectors and fusion: over-fetch,
    keep the eligible, ask for more while too few survive."""
    top_k = initial_top_k(limit)
    while True:
        lists = await store.query_many(queries, top_k=top_k, exclude_ids=track_ids)
        ranking = fuse(lists)
        tracks = await catalog.hydrate([c.track_id for c in ranking])
        exhausted = all(len(candidates) < top_k for candidates in lists)
        if len(tracks) >= limit or exhausted or top_k >= MAX_TOP_K:
            return [track.id for track in tracks[:limit]]
        top_k = min(top_k * TOP_K_GROWTH, MAX_TOP_K)


async def run_seed(
    track_ids: Sequence[int], store: ExactStore, catalog: InMemoryCatalog, limit: int
) -> list[int]:
    vectors_by_id = await store.get_vectors(track_ids)
    if not vectors_by_id:
        return []
    # the original's randomness, fixed per playlist so a run is reproducible
    rng = random.Random(",".join(map(str, sorted(vectors_by_id))))
    queries = seed_queries([vectors_by_id[t] for t in track_ids if t in vectors_by_id], rng)
    exclude = set(track_ids)

    def fuse(lists: list[list[Candidate]]) -> list[Candidate]:
        plain = [[(c.track_id, c.distance) for c in ranked] for ranked in lists]
        return [Candidate(t, d) for t, d in baseline.rrf(plain, exclude)]

    return await ranked_eligible(queries, fuse, track_ids, store, catalog, limit)


async def run_mean(
    track_ids: Sequence[int], store: ExactStore, catalog: InMemoryCatalog, limit: int
) -> list[int]:
    vectors_by_id = await store.get_vectors(track_ids)
    if not vectors_by_id:
        return []
    mean = np.mean([vectors_by_id[t] for t in sorted(vectors_by_id)], axis=0)
    query = (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)
    exclude = set(track_ids)

    def fuse(lists: list[list[Candidate]]) -> list[Candidate]:
        return [c for c in lists[0] if c.track_id not in exclude]

    return await ranked_eligible([query], fuse, track_ids, store, catalog, limit)


def weighted_rrf(
    lists: Sequence[Sequence[Candidate]], weights: Sequence[int], exclude: set[int]
) -> list[Candidate]:
    """RRF with each list's terms scaled by its cluster's size: sum w_i / (60 + rank)."""
    scores: dict[int, float] = {}
    best: dict[int, Candidate] = {}
    for candidates, weight in zip(lists, weights, strict=True):
        rank = RRF_K
        for candidate in candidates:
            if candidate.track_id in exclude:
                continue
            rank += 1
            scores[candidate.track_id] = scores.get(candidate.track_id, 0.0) + weight / rank
            if (
                candidate.track_id not in best
                or candidate.distance < best[candidate.track_id].distance
            ):
                best[candidate.track_id] = candidate
    order = sorted(scores, key=lambda t: (-scores[t], best[t].distance, t))
    return [best[t] for t in order]


async def run_weighted_rrf(
    track_ids: Sequence[int], store: ExactStore, catalog: InMemoryCatalog, limit: int
) -> list[int]:
    plan = plan_queries(await store.get_vectors(track_ids), strays=True)
    if not plan.vectors:
        return []
    exclude = set(track_ids)

    def fuse(lists: list[list[Candidate]]) -> list[Candidate]:
        return weighted_rrf(lists, plan.weights, exclude)

    return await ranked_eligible(plan.vectors, fuse, track_ids, store, catalog, limit)


def engine(**options: Any) -> Run:
    """`engine.recommend` with `options` (none: its own defaults, what the service serves)."""

    async def run(
        track_ids: Sequence[int], store: ExactStore, catalog: InMemoryCatalog, limit: int
    ) -> list[int]:
        result = await recommend(track_ids, store, limit=limit, catalog=catalog, **options)
        return [track.id for track in result.tracks]

    return run


ALGORITHMS: tuple[Algorithm, ...] = (
    Algorithm("seed", "the seed: random-init k-means, RRF", run_seed),
    Algorithm("mean", "one query: the mean embedding", run_mean),
    Algorithm("engine", "engine.recommend's defaults", engine()),
    Algorithm("engine-nocap", "the defaults, no artist cap", engine(max_per_artist=None)),
    Algorithm(
        "consensus",
        "the defaults, 2-5 tracks' lists fused by mood and consensus (engine.consensus)",
        engine(consensus=True),
    ),
    Algorithm(
        "rrf",
        "engine, fusion=rrf, no strays, no artist cap (the old defaults)",
        engine(fusion=FusionMode.RRF, strays=False, max_per_artist=None),
    ),
    Algorithm(
        "proportional",
        "engine, fusion=proportional, no strays",
        engine(fusion=FusionMode.PROPORTIONAL, strays=False, max_per_artist=None),
    ),
    Algorithm("rrf+strays", "rrf, strays set aside", engine(fusion=FusionMode.RRF, strays=True)),
    Algorithm("wrrf+strays", "cluster-size-weighted RRF, strays set aside", run_weighted_rrf),
)


def by_name(names: Sequence[str]) -> list[Algorithm]:
    known = {algorithm.name: algorithm for algorithm in ALGORITHMS}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown algorithms {unknown}; known: {sorted(known)}")
    return [known[name] for name in names]
