"""k-means in NumPy: the clusters of a playlist's sound.

pure and deterministic: the same points in the same order with the same seed
always give the same centroids. order-independence for a *set* of tracks is
the caller's half of the bargain (`engine.strategy` sorts tracks by id and
derives the seed from the ids).

degenerate inputs are part of the contract, not errors: duplicate vectors,
k larger than the number of distinct points, clusters that empty out, zero
vectors. the result may then hold fewer than k clusters, never an empty one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]

# Lloyd's converges in a handful of steps on playlists; this bounds the worst case
MAX_ITERATIONS = 50
# above this many points, iterate on a seeded sample of this size, then assign every
# point once (a pass over 500 x 512 floats costs ~0.1 ms here; Lloyd's on all of them
# would cost ~2 ms, the sample's ~40 points per cluster locate 3 centroids well)
SAMPLE_SIZE = 128


@dataclass(frozen=True, slots=True)
class Clusters:
    """`centroids[j]` is the mean of the points with `labels == j`; `sizes[j]` counts them."""

    centroids: Matrix
    labels: npt.NDArray[np.intp]
    sizes: npt.NDArray[np.intp]


def kmeans(
    points: Matrix,
    k: int,
    *,
    seed: int,
    max_iterations: int = MAX_ITERATIONS,
    sample_size: int = SAMPLE_SIZE,
    squared_norms: npt.NDArray[np.float32] | None = None,
) -> Clusters:
    """cluster the rows of `points` into at most `k` non-empty clusters.

    `fit_centroids`, then every point assigned to its nearest centroid. at or
    below `sample_size` points the centroids are the exact means of the final
    partition; above it they are the means of the sample's clusters, and
    `labels`/`sizes` still cover every point. `squared_norms`, when the caller
    has them (`np.einsum("ij,ij->i", points, points)`), saves a pass.
    """
    points = _checked(points, k)
    if points.shape[0] <= sample_size:
        fit = _fit(points, k, seed, max_iterations, squared_norms)
        if fit.converged:
            # Lloyd's stopped because the partition repeated: its labels are the
            # nearest centroids and its centroids their means already (no refill
            # or mean to redo: that was two passes over the points for nothing)
            sizes = np.bincount(fit.labels, minlength=len(fit.centroids)).astype(np.intp)
            return Clusters(centroids=fit.centroids, labels=fit.labels, sizes=sizes)
        centroids = fit.centroids
    else:
        centroids = fit_centroids(
            points, k, seed=seed, max_iterations=max_iterations, sample_size=sample_size
        )
    labels = _nearest(points, centroids)
    centroids, labels = _refill_empty(points, centroids, labels)
    if points.shape[0] <= sample_size:
        centroids = _means(points, labels, len(centroids))
    sizes = np.bincount(labels, minlength=len(centroids)).astype(np.intp)
    return Clusters(centroids=centroids, labels=labels, sizes=sizes)


def fit_centroids(
    points: Matrix,
    k: int,
    *,
    seed: int,
    max_iterations: int = MAX_ITERATIONS,
    sample_size: int = SAMPLE_SIZE,
) -> Matrix:
    """at most `k` distinct centroids: k-means++ seeding, then Lloyd's iterations.

    above `sample_size` points they are trained on an evenly spaced sample of the
    rows (the way large-scale k-means libraries train), which keeps a 500-track
    playlist under a millisecond: one pass over its 500 x 512 floats costs ~0.1 ms
    on the machines this runs on. rows arrive sorted by track id, so the sample
    depends on the set of tracks only, like everything else here.
    """
    points = _checked(points, k)
    n = points.shape[0]
    if n > sample_size:
        rows = np.linspace(0, n - 1, sample_size).astype(np.intp)
        points = points[rows]
    return _fit(points, k, seed, max_iterations, None).centroids


@dataclass(frozen=True, slots=True)
class _Fit:
    centroids: Matrix
    labels: npt.NDArray[np.intp]  # the partition the centroids were last computed from
    converged: bool  # the partition repeated: labels are also the centroids' nearest


def _fit(
    points: Matrix,
    k: int,
    seed: int,
    max_iterations: int,
    squared_norms: npt.NDArray[np.float32] | None,
) -> _Fit:
    # Generator(PCG64(seed)) is what default_rng(seed) builds, minus its dispatch
    rng = np.random.Generator(np.random.PCG64(seed))
    if squared_norms is None:
        squared_norms = np.einsum("ij,ij->i", points, points)
    return _lloyd(points, _kmeans_plus_plus(points, k, rng, squared_norms), max_iterations)


def _checked(points: Matrix, k: int) -> Matrix:
    if points.ndim != 2 or points.shape[0] == 0:
        raise ValueError(f"kmeans needs a non-empty 2-d matrix, got shape {points.shape}")
    if k < 1:
        raise ValueError(f"kmeans needs k >= 1, got {k}")
    checked: Matrix = np.ascontiguousarray(points, dtype=np.float32)
    return checked


def _lloyd(points: Matrix, centroids: Matrix, max_iterations: int) -> _Fit:
    """Lloyd's iterations until the partition stops changing (or the step budget runs out)."""
    labels = _nearest(points, centroids)
    for _ in range(max_iterations):
        counts = np.bincount(labels, minlength=len(centroids))
        if counts.min() == 0:
            centroids, labels = _refill_empty(points, centroids, labels)
            counts = np.bincount(labels, minlength=len(centroids))
        centroids = _means(points, labels, len(centroids), counts)
        new_labels = _nearest(points, centroids)
        if not (new_labels != labels).any():
            return _Fit(centroids, labels, converged=True)
        labels = new_labels
    return _Fit(centroids, labels, converged=False)


def _kmeans_plus_plus(
    points: Matrix, k: int, rng: np.random.Generator, squared_norms: npt.NDArray[np.float32]
) -> Matrix:
    """greedy k-means++ seeding: each new centre is the best (lowest potential) of a
    few candidates drawn in proportion to their squared distance from the chosen ones.

    plain k-means++ (one draw) now and then puts two centres in one sound and leaves
    two sounds under one centroid; `python -m bench quality` saw it merge regions of a
    3-mood playlist. a few candidates per step (2 + ln k, the usual choice) avoid most
    of that for a few matrix products. stops early when every point coincides with a
    chosen centre: duplicates and k > distinct points end up as fewer, distinct centroids.
    (the picks are checked in Python: 3 numbers cost less than 3 NumPy calls on them.)
    """
    n = points.shape[0]
    trials = 2 + int(math.log(k))
    first = int(rng.integers(n))
    chosen = [first]
    closest = squared_norms + squared_norms[first] - 2.0 * (points @ points[first])
    np.maximum(closest, 0.0, out=closest)  # round-off can dip below zero
    closest[first] = 0.0
    while len(chosen) < k:
        cumulative = np.cumsum(closest)
        total = float(cumulative[-1])
        if total <= 0.0:  # nothing left that is not already a centre
            break
        found = np.searchsorted(cumulative, rng.random(trials) * total, side="right").tolist()
        picks = [min(p, n - 1) for p in found]
        if any(closest[p] <= 0.0 for p in picks):  # a draw landed on a centre: the farthest
            farthest = int(np.argmax(closest))
            picks = [p if closest[p] > 0.0 else farthest for p in picks]
        # |x - c|^2 for every point and candidate, through one product
        distances = squared_norms[:, None] + squared_norms[picks] - 2.0 * (points @ points[picks].T)
        np.maximum(distances, 0.0, out=distances)
        potentials = np.minimum(closest[:, None], distances).sum(axis=0)
        best = int(np.argmin(potentials))  # the first on a tie: deterministic
        pick = picks[best]
        chosen.append(pick)
        np.minimum(closest, distances[:, best], out=closest)
        closest[pick] = 0.0
    return points[chosen]


def _squared_distances(points: Matrix, centroids: Matrix) -> Matrix:
    """|x - c|^2 for every point and centroid, through one matrix product."""
    squared_norms = np.einsum("ij,ij->i", points, points)
    centroid_norms = np.einsum("ij,ij->i", centroids, centroids)
    distances: Matrix = squared_norms[:, None] - 2.0 * (points @ centroids.T) + centroid_norms
    np.maximum(distances, 0.0, out=distances)  # round-off can dip below zero
    return distances


def _nearest(points: Matrix, centroids: Matrix) -> npt.NDArray[np.intp]:
    """each point's closest centroid. |x|^2 is the same for every centroid of a
    point, so argmin(|c|^2 - 2 x.c) decides it with one matrix product."""
    scores = points @ (centroids.T * np.float32(-2.0))
    scores += np.einsum("ij,ij->i", centroids, centroids)
    labels: npt.NDArray[np.intp] = scores.argmin(axis=1)
    return labels


def _means(
    points: Matrix,
    labels: npt.NDArray[np.intp],
    k: int,
    counts: npt.NDArray[np.intp] | None = None,
) -> Matrix:
    """the mean of each cluster, as one (k x n) membership matrix times the points
    (`counts`: the clusters' sizes, when the caller has them)."""
    membership = (labels == np.arange(k)[:, None]).astype(np.float32)
    if counts is None:
        counts = np.bincount(labels, minlength=k)
    means: Matrix = membership @ points
    means /= np.maximum(counts, 1).astype(np.float32)[:, None]
    return means


def _refill_empty(
    points: Matrix, centroids: Matrix, labels: npt.NDArray[np.intp]
) -> tuple[Matrix, npt.NDArray[np.intp]]:
    """give each empty cluster the point farthest from its own centroid; if no point
    is away from its centroid, drop the empty clusters instead."""
    sizes = np.bincount(labels, minlength=len(centroids))
    empty = np.flatnonzero(sizes == 0)
    if empty.size == 0:
        return centroids, labels
    labels = labels.copy()
    centroids = centroids.copy()
    own = _squared_distances(points, centroids)[np.arange(len(points)), labels]
    for cluster in empty:
        sizes = np.bincount(labels, minlength=len(centroids))
        donors = sizes[labels] > 1  # never empty another cluster to fill this one
        candidates = np.where(donors, own, -1.0)
        farthest = int(np.argmax(candidates))
        if candidates[farthest] <= 0.0:
            break
        labels[farthest] = cluster
        centroids[cluster] = points[farthest]
        own[farthest] = 0.0
    sizes = np.bincount(labels, minlength=len(centroids))
    keep = np.flatnonzero(sizes > 0)
    if keep.size < len(centroids):
        remap = np.full(len(centroids), -1, dtype=np.intp)
        remap[keep] = np.arange(keep.size)
        labels = remap[labels]
        centroids = centroids[keep]
    return centroids, labels
