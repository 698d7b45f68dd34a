"""strays: playlist tracks far from every sound the rest of the playlist has.

a playlist of a few moods usually holds a few tracks that belong to none of
them (an odd favourite, a mis-tap). k-means++ seeds on far points, so such a
track often gets a centroid of its own, or a few of them share one: a mean of
unrelated directions, whose nearest neighbours in the catalogue are no sound of
the playlist at all, while two real moods share the centroid that is left.
measured with `python -m bench quality`, that was most of the precision and
coverage the engine lost on playlists with strays.

the rule, on a first k-means partition (one pass: each track against each
centroid): a track's score is its best cosine similarity to a cluster's mean,
its own cluster's mean taken without it (so a track alone in its cluster has
only the others). a stray scores far below the playlist's typical track:
`score < median - max(STRAY_Z * spread, MIN_GAP)`, the spread being the median
absolute deviation scaled to a standard deviation (robust: the strays do not
widen it). in the benchmark's worlds a typical track scores 0.75-0.9 with a
spread of 0.02-0.09, strays from other genres below 0.4, and a stray from a
sibling mood can score like a member (it is then kept: it sounds like one).
`engine.moods` sets the strays aside and clusters the rest again, into the same k.
at most `MAX_STRAY_SHARE` of a playlist can be strays; below `MIN_TRACKS` no
track is one (a lone track of a second mood is a mood, not noise).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from engine.kmeans import Clusters, Matrix

STRAY_Z = 3.0
MAD_TO_SIGMA = 1.4826  # the MAD of a normal distribution times this is its sigma
# however tight a playlist, a track this close (in cosine) to its typical one is no
# stray: a playlist of near-duplicates has almost no spread, and 3 of nothing is nothing
MIN_GAP = 0.1
MAX_STRAY_SHARE = 0.2
MIN_TRACKS = 8


def stray_mask(points: Matrix, clusters: Clusters) -> npt.NDArray[np.bool_]:
    """which rows of `points` are strays of this partition (see the module docstring)."""
    n = len(points)
    if n < MIN_TRACKS:
        return np.zeros(n, dtype=bool)
    sizes = clusters.sizes.astype(np.float32)
    sums = clusters.centroids * sizes[:, None]  # each cluster's sum of unit vectors
    dots = points @ sums.T  # x . sum_j
    sum_norms = np.einsum("ij,ij->i", sums, sums)
    rows = np.arange(n)
    own = clusters.labels
    own_dots = dots[rows, own]
    # own cluster without x: (sum - x); |sum - x|^2 = |sum|^2 - 2 x.sum + |x|^2 (= 1)
    own_dot = own_dots - 1.0
    own_norm2 = sum_norms[own] - 2.0 * own_dots + 1.0
    cosines = dots / np.sqrt(np.maximum(sum_norms, 1e-12))[None, :]
    alone = sizes[own] <= 1
    cosines[rows, own] = np.where(alone, -np.inf, own_dot / np.sqrt(np.maximum(own_norm2, 1e-12)))
    score = cosines.max(axis=1)
    finite = np.isfinite(score)
    values = score
    if not finite.all():  # a track alone in the only cluster: no score
        if not finite.any():
            return np.zeros(n, dtype=bool)
        values = score[finite]
    median = _median(values)
    spread = _median(np.abs(values - median)) * MAD_TO_SIGMA
    stray: npt.NDArray[np.bool_] = score < median - max(STRAY_Z * spread, MIN_GAP)
    budget = int(n * MAX_STRAY_SHARE)
    if int(np.count_nonzero(stray)) > budget:  # only the farthest ones (ties by row)
        farthest = np.argsort(score, kind="stable")[:budget]
        stray = np.zeros(n, dtype=bool)
        stray[farthest] = True
    return stray


def _median(values: npt.NDArray[np.float32]) -> float:
    """np.median's value with one partition (np.median's own checks cost more than
    the rest of this module on a playlist's few hundred numbers)."""
    m = len(values)
    middle = np.partition(values, [(m - 1) // 2, m // 2])
    return float(middle[(m - 1) // 2] + middle[m // 2]) / 2.0
