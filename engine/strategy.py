"""the adaptive strategy: which query vectors a playlist's embeddings become.

    N = 0   nothing to recommend
    N = 1   the track's own embedding
    N 2..5  each track's embedding (fused later with RRF)
    N >= 6  k-means into min(3, N // 2) centroids (fused later); from 8 tracks on,
            the strays (tracks far from every cluster, engine.strays) are set
            aside first and the rest is clustered again

N counts the playlist's tracks whose embedding is usable: a zero, non-finite
or wrongly-sized vector carries no direction for cosine search, so it counts
as "no embedding" rather than poisoning a centroid.
"""

from __future__ import annotations

import hashlib
from array import array
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from engine.kmeans import Matrix, fit_centroids, kmeans
from engine.moods import find_moods
from engine.types import Strategy, Vector

MAX_CLUSTERS = 3
KMEANS_MIN_TRACKS = 6  # below this, one query per track is cheap enough and more faithful
_NORM_FLOOR = 1e-12
_UNIT_TOLERANCE = 1e-4


@dataclass(frozen=True, slots=True)
class QueryPlan:
    """the query vectors for one playlist and the weight (cluster size) of each."""

    strategy: Strategy
    vectors: list[Vector]
    weights: list[int]
    embedded_count: int  # N: tracks with a usable embedding
    strays: int = 0  # tracks set aside as belonging to no cluster (engine.strays)


def seed_for(track_ids: list[int]) -> int:
    """a k-means seed that depends on the set of tracks only (ids must be sorted)."""
    digest = hashlib.blake2b(array("q", track_ids).tobytes(), digest_size=8)
    return int.from_bytes(digest.digest(), "big")


def usable_vectors(vectors_by_id: Mapping[int, Vector]) -> tuple[list[int], Matrix]:
    """ids (sorted) and unit-normalised rows of the usable embeddings.

    the dimension is the one most vectors have; vectors of another shape, zero
    vectors and non-finite ones are left out.
    """
    if not vectors_by_id:
        return [], np.zeros((0, 0), dtype=np.float32)
    ids = sorted(vectors_by_id)
    rows = [vectors_by_id[t] for t in ids]
    # fast path, the usual case: every vector 1-d of one length. one concatenation
    # copies the rows in C (np.asarray of a list of rows costs ~1.5x more); it refuses
    # mixed ranks, and equal len() + rank 1 + the total size pin every shape.
    try:
        lengths = set(map(len, rows))
        flat = np.concatenate(rows) if len(lengths) == 1 and rows[0].ndim == 1 else None
    except (TypeError, ValueError):  # a 0-d vector (no len) or mixed ranks
        flat = None
    if flat is not None and flat.ndim == 1 and flat.size == len(rows) * len(rows[0]):
        matrix = flat.astype(np.float32, copy=False).reshape(len(ids), len(rows[0]))
    else:  # rare: other shapes among the vectors; keep the majority's
        shape = Counter(np.shape(v) for v in rows).most_common(1)[0][0]
        if len(shape) != 1:
            return [], np.zeros((0, 0), dtype=np.float32)
        ids = [t for t, v in zip(ids, rows, strict=True) if np.shape(v) == shape]
        matrix = np.asarray([vectors_by_id[t] for t in ids], dtype=np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))
    keep = np.isfinite(norms) & (norms > _NORM_FLOOR)
    if not keep.all():
        ids = [t for t, usable in zip(ids, keep.tolist(), strict=True) if usable]
        matrix, norms = matrix[keep], norms[keep]
    # CLAP embeddings usually arrive unit-length: skip the division (a pass) then
    if np.abs(norms - 1.0).max(initial=0.0) > _UNIT_TOLERANCE:
        matrix /= norms[:, None]
    return ids, matrix


def plan_queries(
    vectors_by_id: Mapping[int, Vector], *, cluster_sizes: bool = True, strays: bool = True
) -> QueryPlan:
    """the adaptive strategy on a playlist's embeddings (pure; order-independent).

    `cluster_sizes=False` skips assigning every track to a centroid, whose only
    use is the weights of proportional fusion (RRF ignores them): the weights are
    then all 1 (unless strays are set aside, which computes them anyway).
    `strays=True` (the default) sets aside the tracks far from every cluster
    (engine.strays) and clusters the rest; `False` clusters every track (the seed's way).
    """
    ids, matrix = usable_vectors(vectors_by_id)
    n = len(ids)
    if n == 0:
        return QueryPlan(Strategy.NONE, [], [], 0)
    if n == 1:
        return QueryPlan(Strategy.DIRECT, [matrix[0]], [1], 1)
    if n < KMEANS_MIN_TRACKS:
        return QueryPlan(Strategy.RRF, list(matrix), [1] * n, n)
    k = min(MAX_CLUSTERS, n // 2)
    set_aside = 0
    if strays:
        moods = find_moods(matrix, k, seed=seed_for(ids))
        centroids, weights, set_aside = moods.centroids, moods.sizes.tolist(), moods.strays
    elif cluster_sizes:
        clusters = kmeans(matrix, k, seed=seed_for(ids))
        centroids, weights = clusters.centroids, clusters.sizes.tolist()
    else:
        centroids = fit_centroids(matrix, k, seed=seed_for(ids))
        weights = [1] * len(centroids)
    norms = np.sqrt(np.einsum("ij,ij->i", centroids, centroids))
    queries: list[Vector] = list(centroids / np.maximum(norms, _NORM_FLOOR)[:, None])
    for j in np.flatnonzero(norms <= _NORM_FLOOR):
        # members pointing opposite ways cancel out: query with the closest track instead
        queries[j] = matrix[int(np.argmax(matrix @ centroids[j]))]
    return QueryPlan(Strategy.KMEANS, queries, weights, n, set_aside)
