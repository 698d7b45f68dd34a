"""a playlist's moods: the clusters its query vectors come from (N >= 6).

    k-means into k = min(3, N // 2)          (engine.kmeans)
    strays set aside, the rest clustered again into k    (engine.strays)
    clusters that are one mood merged        (below)

k is at most plyr.fm's original min(3, N//2); the data can only lower it. a
playlist of one mood split three ways costs precision with proportional slots:
each part gets slots of its own, and the nearest tracks of a part's centroid reach past the edge of
the mood, into its neighbours (`python -m bench quality`: 1-region playlists
lost 3-6 points of precision at top 3). so two clusters are merged when they
are as alike across as within: their mean cross similarity (mean cosine of a
track of one with a track of the other) is at least `MERGE_RATIO` of the
lower of their own mean inner similarities. all of it from the clusters' sums
of unit vectors, k x k numbers:

    inner(a) = (|S_a|^2 - n_a) / (n_a (n_a - 1))     cross(a, b) = S_a . S_b / (n_a n_b)

in the benchmark's worlds, parts of one region scored 0.80-1.10 (5 % below
0.92) and clusters of different regions at most 0.90 (95 % below 0.77): 0.85
sits in the gap. the most alike pair merges first, then the rule is asked
again. a cluster of one track has no inner similarity and is never merged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engine.kmeans import Matrix, kmeans
from engine.strays import stray_mask

MERGE_RATIO = 0.9


@dataclass(frozen=True, slots=True)
class Moods:
    """the clusters worth querying: centroids (members' means) and member counts."""

    centroids: Matrix
    sizes: npt.NDArray[np.intp]
    strays: int  # tracks set aside


def find_moods(
    points: Matrix,
    k: int,
    *,
    seed: int,
    merge: bool = True,
    squared_norms: npt.NDArray[np.float32] | None = None,
) -> Moods:
    """the moods of `points` (unit rows, sorted by track id): at most `k` clusters.
    `squared_norms` are the rows' (np.einsum), when the caller has them."""
    first = kmeans(points, k, seed=seed, squared_norms=squared_norms)
    strays = stray_mask(points, first)
    clusters = first
    if strays.any():
        kept = ~strays
        norms = None if squared_norms is None else squared_norms[kept]
        clusters = kmeans(points[kept], k, seed=seed, squared_norms=norms)
    centroids, sizes = clusters.centroids, clusters.sizes
    if merge:
        centroids, sizes = merge_alike(centroids, sizes)
    return Moods(centroids, sizes, int(strays.sum()))


def merge_alike(
    centroids: Matrix, sizes: npt.NDArray[np.intp]
) -> tuple[Matrix, npt.NDArray[np.intp]]:
    """merge, most alike first, the clusters that are one mood (see the module docstring).

    every similarity comes from one k x k product of the clusters' sums; when
    nothing merges the clusters come back as they were given.
    """
    counts = [int(n) for n in sizes]
    if len(counts) < 2:
        return centroids, sizes
    sums = centroids.astype(np.float64) * sizes[:, None]
    merged_any = False
    while len(counts) > 1:
        gram = (sums @ sums.T).tolist()
        best, pair = MERGE_RATIO, None
        for a in range(len(counts)):
            for b in range(a + 1, len(counts)):
                if counts[a] < 2 or counts[b] < 2:
                    continue
                inner = min(_inner(gram[a][a], counts[a]), _inner(gram[b][b], counts[b]))
                cross = gram[a][b] / (counts[a] * counts[b])
                if inner > 0 and cross / inner >= best:  # ties: the earlier pair
                    best, pair = cross / inner + 1e-12, (a, b)
        if pair is None:
            break
        a, b = pair
        sums[a] += sums[b]
        sums = np.delete(sums, b, axis=0)
        counts[a] += counts[b]
        del counts[b]
        merged_any = True
    if not merged_any:
        return centroids, sizes
    merged: Matrix = (sums / np.asarray(counts, dtype=np.float64)[:, None]).astype(np.float32)
    return merged, np.asarray(counts, dtype=np.intp)


def _inner(squared_norm: float, n: int) -> float:
    """mean cosine of two distinct members, from |S|^2 of the cluster's sum S."""
    return (squared_norm - n) / (n * (n - 1))
