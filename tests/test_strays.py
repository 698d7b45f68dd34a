"""strays: tracks far from every sound of their playlist are set aside before clustering."""

from __future__ import annotations

import numpy as np

from engine.kmeans import Clusters, kmeans
from engine.moods import find_moods
from engine.strategy import plan_queries
from engine.strays import MAX_STRAY_SHARE, MIN_TRACKS, stray_mask

DIM = 64


def unit(rows: np.ndarray) -> np.ndarray:
    normalised: np.ndarray = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
    return normalised


def moods_with_strays(
    sizes: list[int], strays: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """unit rows: tight blobs of `sizes` around orthogonal directions, then `strays`
    rows each in a direction of its own; and the blob centres."""
    rng = np.random.default_rng(seed)
    centres = np.eye(DIM, dtype=np.float32)[: len(sizes)]
    rows = [centres[i] + 0.05 * rng.standard_normal((n, DIM)) for i, n in enumerate(sizes)]
    rows.append(
        np.eye(DIM)[len(sizes) : len(sizes) + strays] + 0.05 * rng.standard_normal((strays, DIM))
    )
    return unit(np.concatenate(rows)), centres


def test_a_track_in_a_direction_of_its_own_is_a_stray() -> None:
    points, _ = moods_with_strays([10, 10], strays=2)
    mask = stray_mask(points, kmeans(points, 3, seed=1))
    assert mask[-2:].all()
    assert not mask[:-2].any()


def test_a_stray_alone_in_its_cluster_is_still_a_stray() -> None:
    # k = 3 with two moods and one stray: k-means gives the stray its own cluster,
    # where it is its own centroid; only the others' means judge it
    points, _ = moods_with_strays([12, 12], strays=1)
    labels = np.array([0] * 12 + [1] * 12 + [2], dtype=np.intp)
    centroids = np.stack([points[labels == j].mean(axis=0) for j in range(3)])
    clusters = Clusters(centroids, labels, np.bincount(labels).astype(np.intp))
    assert stray_mask(points, clusters).tolist() == [False] * 24 + [True]


def test_small_playlists_have_no_strays() -> None:
    points, _ = moods_with_strays([3, 3], strays=1)
    assert len(points) < MIN_TRACKS
    assert not stray_mask(points, kmeans(points, 3, seed=1)).any()


def test_at_most_a_fifth_of_a_playlist_is_strays() -> None:
    points, _ = moods_with_strays([20], strays=10)  # a third of it is scattered
    mask = stray_mask(points, kmeans(points, 3, seed=1))
    assert mask.sum() == int(len(points) * MAX_STRAY_SHARE)
    assert mask[20:].sum() == mask.sum()  # the ones set aside are scattered ones


def test_moods_are_found_again_without_the_strays() -> None:
    points, centres = moods_with_strays([20, 12, 8], strays=3)
    moods = find_moods(points, 3, seed=7)
    assert moods.strays == 3
    assert sorted(moods.sizes.tolist()) == [8, 12, 20]
    # each centroid points at one blob's centre
    best = np.argmax(unit(moods.centroids) @ centres.T, axis=1)
    assert sorted(best.tolist()) == [0, 1, 2]


def test_a_playlist_without_strays_is_clustered_once_as_before() -> None:
    points, _ = moods_with_strays([15, 15], strays=0)
    moods = find_moods(points, 3, seed=3, merge=False)
    plain = kmeans(points, 3, seed=3)
    assert moods.strays == 0
    np.testing.assert_array_equal(moods.centroids, plain.centroids)


def test_plan_sets_strays_aside_and_still_depends_on_the_set_only() -> None:
    points, _ = moods_with_strays([20, 10], strays=2)
    by_id = {1000 + 7 * i: row for i, row in enumerate(points)}
    shuffled = dict(reversed(list(by_id.items())))
    plan, again = plan_queries(by_id), plan_queries(shuffled)
    assert plan.strays == 2
    assert sum(plan.weights) == 30
    for a, b in zip(plan.vectors, again.vectors, strict=True):
        np.testing.assert_array_equal(a, b)
    assert plan_queries(by_id, strays=False).strays == 0
