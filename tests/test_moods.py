"""moods: clusters that are one mood are merged; distinct moods stay apart."""

from __future__ import annotations

import numpy as np

from engine.moods import MERGE_RATIO, find_moods, merge_alike

DIM = 32


def blob(centre: np.ndarray, n: int, rng: np.random.Generator, noise: float = 0.04) -> np.ndarray:
    rows = centre + noise * rng.standard_normal((n, DIM))
    unit: np.ndarray = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
    return unit


def test_one_mood_split_in_three_is_merged_into_one() -> None:
    rng = np.random.default_rng(1)
    points = blob(np.eye(DIM)[0], 30, rng)
    moods = find_moods(points, 3, seed=4)
    assert moods.sizes.tolist() == [30]
    np.testing.assert_allclose(moods.centroids[0], points.mean(axis=0), atol=1e-5)


def test_distinct_moods_are_kept_apart() -> None:
    rng = np.random.default_rng(2)
    # two moods at cosine 0.5 of each other: alike, but not one
    a, b = np.eye(DIM)[0], 0.5 * np.eye(DIM)[0] + np.sqrt(0.75) * np.eye(DIM)[1]
    points = np.concatenate([blob(a, 20, rng), blob(b, 10, rng)])
    moods = find_moods(points, 3, seed=4)
    assert sorted(moods.sizes.tolist()) == [10, 20]


def test_merge_rule_on_hand_made_sums() -> None:
    x, y = np.eye(2, dtype=np.float32)
    # cluster sizes 2 and 2; members of each are identical (inner similarity 1)
    # a: both at x; b: both at x too -> cross 1 -> merged
    _, sizes = merge_alike(np.stack([x, x]), np.array([2, 2]))
    assert sizes.tolist() == [4]
    # b at y: cross 0 -> kept
    kept, sizes = merge_alike(np.stack([x, y]), np.array([2, 2]))
    assert sizes.tolist() == [2, 2]
    np.testing.assert_array_equal(kept, np.stack([x, y]))


def test_a_cluster_of_one_track_is_never_merged() -> None:
    x = np.array([1.0, 0.0], dtype=np.float32)
    _, sizes = merge_alike(np.stack([x, x]), np.array([5, 1]))
    assert sizes.tolist() == [5, 1]


def test_the_threshold_is_a_ratio_of_cross_to_inner_similarity() -> None:
    # two clusters of unit vectors: inner similarity 1 each, cross = cos(angle)
    for cosine, merged in ((MERGE_RATIO + 0.02, True), (MERGE_RATIO - 0.02, False)):
        a = np.array([1.0, 0.0], dtype=np.float32)
        b = np.array([cosine, np.sqrt(1 - cosine**2)], dtype=np.float32)
        _, sizes = merge_alike(np.stack([a, b]), np.array([3, 3]))
        assert (sizes.tolist() == [6]) is merged


def test_nothing_alike_comes_back_as_given() -> None:
    x, y = np.eye(DIM, dtype=np.float32)[:2]
    centroids = np.stack([x, y])
    sizes = np.array([4, 3])
    kept, kept_sizes = merge_alike(centroids, sizes)
    assert kept is centroids
    assert kept_sizes is sizes
