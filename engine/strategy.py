"""the adaptive strategy: which query vectors a playlist's embeddings become.

    N = 0   nothing to recommend
    N = 1   the track's own embedding
    N 2..5  each track's embedding (fused later: one pick each in turn in the
            proportional mode, or by engine.consensus; with RRF in the rrf mode)
    N >= 6  k-means into min(3, N // 2) centroids (fused later), on an evenly
            spaced sample of 128 tracks above that many; from 8 tracks on,
            the strays (tracks far from every cluster, engine.strays) are set
            aside first and the rest is clustered again

N counts the playlist's tracks whose embedding is usable: a zero, non-finite
or wrongly-sized vector carries no direction for cosine search, so it counts
as "no embedding" rather than poisoning a centroid.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from engine.assembly import NORM_FLOOR, sample_vectors, usable_vectors
from engine.explain import representatives
from engine.fusion import largest_remainder
from engine.kmeans import SAMPLE_SIZE, fit_centroids, kmeans
from engine.moods import find_moods
from engine.types import Strategy, Vector

__all__ = ["KMEANS_MIN_TRACKS", "MAX_CLUSTERS", "QueryPlan", "plan_queries", "usable_vectors"]

MAX_CLUSTERS = 3
KMEANS_MIN_TRACKS = 6  # below this, one query per track is cheap enough and more faithful


@dataclass(frozen=True, slots=True)
class QueryPlan:
    """the query vectors for one playlist and the weight (cluster size) of each."""

    strategy: Strategy
    vectors: list[Vector]
    weights: list[int]
    embedded_count: int  # N: tracks with a usable embedding
    strays: int = 0  # tracks set aside as belonging to no cluster (engine.strays)
    # per query vector, the playlist track it stands for (engine.explain): the track
    # itself below 6 tracks, else the sampled track most alike the centroid
    stands_for: list[int] = field(default_factory=list)


def seed_for(track_ids: list[int]) -> int:
    """a k-means seed that depends on the set of tracks only (ids must be sorted)."""
    digest = hashlib.blake2b(array("q", track_ids).tobytes(), digest_size=8)
    return int.from_bytes(digest.digest(), "big")


def plan_queries(
    vectors_by_id: Mapping[int, Vector], *, cluster_sizes: bool = True, strays: bool = True
) -> QueryPlan:
    """the adaptive strategy on a playlist's embeddings (pure; order-independent).

    `cluster_sizes=False` skips assigning every track to a centroid, whose only
    use is the weights of proportional fusion (RRF ignores them): the weights are
    then all 1 (unless strays are set aside, which computes them anyway).
    `strays=True` (the default) sets aside the tracks far from every cluster
    (engine.strays) and clusters the rest; `False` clusters every track (plyr.fm's original way).
    """
    sample = sample_vectors(vectors_by_id, SAMPLE_SIZE)
    ids, matrix, n = sample.ids, sample.matrix, sample.embedded_count
    if not ids:
        return QueryPlan(Strategy.NONE, [], [], 0)
    if n == 1:
        return QueryPlan(Strategy.DIRECT, [matrix[0]], [1], 1, stands_for=[ids[0]])
    if n < KMEANS_MIN_TRACKS:
        return QueryPlan(Strategy.RRF, list(matrix), [1] * n, n, stands_for=list(ids))
    k = min(MAX_CLUSTERS, n // 2)
    set_aside = 0
    if strays:
        moods = find_moods(matrix, k, seed=seed_for(ids), squared_norms=sample.squared_norms)
        centroids, weights, set_aside = moods.centroids, moods.sizes.tolist(), moods.strays
    elif cluster_sizes:
        clusters = kmeans(matrix, k, seed=seed_for(ids), squared_norms=sample.squared_norms)
        centroids, weights = clusters.centroids, clusters.sizes.tolist()
    else:
        centroids = fit_centroids(matrix, k, seed=seed_for(ids))
        weights = [1] * len(centroids)
    norms = np.sqrt(np.einsum("ij,ij->i", centroids, centroids))
    queries: list[Vector] = list(centroids / np.maximum(norms, NORM_FLOOR)[:, None])
    if norms.min() <= NORM_FLOOR:
        for j in np.flatnonzero(norms <= NORM_FLOOR):
            # members pointing opposite ways cancel out: query with the closest track instead
            queries[j] = matrix[int(np.argmax(matrix @ centroids[j]))]
    if len(ids) < n and cluster_sizes:  # sizes counted on the sample: scale them to N
        set_aside = round(set_aside * n / len(ids))
        weights = largest_remainder(weights, n - set_aside)
    stands_for = representatives(ids, matrix, queries)
    return QueryPlan(Strategy.KMEANS, queries, weights, n, set_aside, stands_for)
