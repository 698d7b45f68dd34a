"""a playlist's moods: the clusters its query vectors come from (N >= 6).

    k-means into k = min(3, N // 2)          (engine.kmeans)
    strays set aside, the rest clustered again into k    (engine.strays)
    clusters that are one mood merged        (below)

k is at most plyr.fm's original min(3, N//2); the data can only lower it. a
playlist of one mood split three ways costs precision with proportional slots:
each part gets slots of its own, and the nearest tracks of a part's centroid reach
past the edge of the mood, into its neighbours (`python -m bench quality`: 1-region
playlists lost 3-6 points of precision at top 3). so two clusters are merged when
merging them hardly spreads them: the mean squared distance of a member to its
centroid grows by less than `MERGE_GROWTH` (as a share of the two clusters' own).
for unit vectors, all of it from the clusters' sums S and sizes n, k x k numbers:

    spread(a) = 1 - |S_a / n_a|^2            gap(a, b) = |S_a / n_a - S_b / n_b|^2
    growth = n_a n_b / (n_a + n_b)^2 * gap / ((n_a spread(a) + n_b spread(b)) / (n_a + n_b))

(Ward's increase of the within-cluster sum of squares, relative to it.) a ratio
of distances, not of similarities: it does not move when every similarity is
squeezed into a narrow band around a common direction, as CLAP embeddings are
(`python -m bench quality --clap`), where the rule it replaced (cross similarity
at least 0.9 of the lower inner one) merged distinct moods and coverage at top 3
fell to 0.79. the pair that grows least merges first, then the rule is asked
again. a cluster of one track is never merged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engine.kmeans import Matrix, kmeans
from engine.strays import stray_mask

# chosen with `python -m bench quality` on the plain and the CLAP-like worlds (README)
MERGE_GROWTH = 0.15
SPREAD_FLOOR = 1e-9  # below it a cluster's members are one point


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
    """merge, least growth first, the clusters that are one mood (see the module
    docstring). when nothing merges the clusters come back as they were given."""
    counts = [int(n) for n in sizes]
    if len(counts) < 2:
        return centroids, sizes
    sums = centroids.astype(np.float64) * sizes[:, None]
    merged_any = False
    while len(counts) > 1:
        means = sums / np.asarray(counts, dtype=np.float64)[:, None]
        gram = (means @ means.T).tolist()
        best, pair = MERGE_GROWTH, None
        for a in range(len(counts)):
            for b in range(a + 1, len(counts)):
                if counts[a] < 2 or counts[b] < 2:
                    continue
                growth = _growth(gram, a, b, counts[a], counts[b])
                if growth < best:  # ties: the earlier pair
                    best, pair = growth, (a, b)
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


def _growth(gram: list[list[float]], a: int, b: int, n_a: int, n_b: int) -> float:
    """how much merging clusters a and b spreads them, relative to their own spread."""
    total = n_a + n_b
    pooled = (n_a * max(0.0, 1.0 - gram[a][a]) + n_b * max(0.0, 1.0 - gram[b][b])) / total
    gap = max(0.0, gram[a][a] + gram[b][b] - 2.0 * gram[a][b])
    if pooled <= SPREAD_FLOOR:
        # members identical within each: one mood only if it is the same point
        return 0.0 if gap <= SPREAD_FLOOR else float("inf")
    return n_a * n_b / total**2 * gap / pooled
