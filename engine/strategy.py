"""the adaptive strategy: which query vectors a playlist's embeddings become.

    N = 0   nothing to recommend
    N = 1   the track's own embedding
    N 2..5  each track's embedding (fused later with RRF)
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
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engine.fusion import largest_remainder
from engine.kmeans import SAMPLE_SIZE, Matrix, fit_centroids, kmeans
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


@dataclass(frozen=True, slots=True)
class Sample:
    """the rows the strategy works on: ids (sorted), unit rows, and N."""

    ids: list[int]
    matrix: Matrix
    embedded_count: int


def usable_vectors(vectors_by_id: Mapping[int, Vector]) -> tuple[list[int], Matrix]:
    """ids (sorted) and unit-normalised rows of the usable embeddings.

    the dimension is the one most vectors have; vectors of another shape, zero
    vectors and non-finite ones are left out.
    """
    sample = sample_vectors(vectors_by_id, None)
    return sample.ids, sample.matrix


def sample_vectors(vectors_by_id: Mapping[int, Vector], sample_size: int | None) -> Sample:
    """the usable embeddings (see `usable_vectors`), only `sample_size` of them when
    there are more, drawn with a seed of the set of ids (deterministic per set).

    above the sample size only the sampled vectors are read at all: assembling and
    checking 500 x 512 floats cost more than everything else the engine does
    (`plyr-recs bench engine`), and k-means trained on a sample already. N then
    counts the vectors given less the unusable ones (wrong shape, zero, non-finite)
    found in the sample; one outside it is never read, so it cannot harm a centroid.
    """
    if not vectors_by_id:
        return _NO_SAMPLE
    ids = sorted(vectors_by_id)
    rows = [vectors_by_id[t] for t in ids]
    total = len(ids)
    picked = _sampled(ids, rows, sample_size)
    flat = _concatenated(picked[1])
    if flat is None:  # rare: other shapes among the vectors; keep the majority's
        shape = Counter(np.shape(v) for v in rows).most_common(1)[0][0]
        if len(shape) != 1:
            return _NO_SAMPLE
        kept = [(t, v) for t, v in zip(ids, rows, strict=True) if np.shape(v) == shape]
        total = len(kept)
        picked = _sampled([t for t, _ in kept], [v for _, v in kept], sample_size)
        flat = np.concatenate(picked[1])
    ids, rows = picked
    width = len(rows[0])
    matrix: Matrix = flat.astype(np.float32, copy=False).reshape(len(ids), width)
    with np.errstate(invalid="ignore", over="ignore"):
        norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))
    keep = np.isfinite(norms) & (norms > _NORM_FLOOR)
    unusable = 0
    if not keep.all():
        unusable = int(len(ids) - keep.sum())
        ids = [t for t, usable in zip(ids, keep.tolist(), strict=True) if usable]
        matrix, norms = matrix[keep], norms[keep]
    # CLAP embeddings usually arrive unit-length: skip the division (a pass) then
    if np.abs(norms - 1.0).max(initial=0.0) > _UNIT_TOLERANCE:
        matrix = matrix / norms[:, None]
    return Sample(ids, matrix, total - unusable)


_FIBONACCI = 0x9E3779B97F4A7C15  # 2^64 / golden ratio: the usual multiplicative hash
_NO_SAMPLE = Sample([], np.zeros((0, 0), dtype=np.float32), 0)


def _sampled(
    ids: list[int], rows: list[Vector], sample_size: int | None
) -> tuple[list[int], list[Vector]]:
    """`sample_size` of the rows, in id order: those whose ids hash lowest.

    a multiplicative (Fibonacci) hash of each id scatters any regularity of the
    ids (evenly spaced rows aliased with ids that cycle through moods, as the
    tests' vectors do), depends on the set alone, and costs two array operations
    where drawing from a seeded generator cost ~0.1 ms.
    """
    if sample_size is None or len(ids) <= sample_size:
        return ids, rows
    keys = np.asarray(ids, dtype=np.int64).view(np.uint64) * np.uint64(_FIBONACCI)
    positions = np.sort(np.argpartition(keys, sample_size - 1)[:sample_size]).tolist()
    return [ids[p] for p in positions], [rows[p] for p in positions]


def _concatenated(rows: list[Vector]) -> npt.NDArray[np.generic] | None:
    """the rows as one flat array when they are all 1-d of one length, else None.

    one concatenation copies the rows in C (np.asarray of a list of rows costs
    ~1.5x more); it refuses mixed ranks, and equal len() + rank 1 + the total
    size pin every shape.
    """
    try:
        if len(set(map(len, rows))) != 1 or np.ndim(rows[0]) != 1:
            return None
        flat = np.concatenate(rows)
    except (TypeError, ValueError):  # a 0-d vector (no len) or mixed ranks
        return None
    if flat.ndim != 1 or flat.size != len(rows) * len(rows[0]):
        return None
    return flat


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
    if len(ids) < n and cluster_sizes:  # sizes counted on the sample: scale them to N
        set_aside = round(set_aside * n / len(ids))
        weights = largest_remainder(weights, n - set_aside)
    return QueryPlan(Strategy.KMEANS, queries, weights, n, set_aside)
