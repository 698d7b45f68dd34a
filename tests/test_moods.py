"""moods: clusters that are one mood are merged; distinct moods stay apart."""

from __future__ import annotations

import numpy as np

from engine.moods import MERGE_GROWTH, find_moods, merge_alike

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


def two_clusters(gap: float, spread: float) -> tuple[np.ndarray, np.ndarray]:
    """the centroids (means of unit members) of two clusters of 4 members each, whose
    means are `gap` apart (squared) and each `spread` wide (1 - |mean|^2)."""
    length = np.sqrt(1 - spread)
    half = np.sqrt(gap) / 2 / length  # the angle's sine between the means' directions
    a = length * np.array([np.sqrt(1 - half**2), half, 0.0])
    b = length * np.array([np.sqrt(1 - half**2), -half, 0.0])
    return np.stack([a, b]).astype(np.float32), np.array([4, 4])


def test_the_threshold_is_the_spread_merging_adds() -> None:
    spread = 0.2
    # equal sizes: growth = gap / 4 / spread
    for growth, merged in ((MERGE_GROWTH - 0.02, True), (MERGE_GROWTH + 0.02, False)):
        centroids, sizes = two_clusters(growth * 4 * spread, spread)
        _, kept = merge_alike(centroids, sizes)
        assert (kept.tolist() == [8]) is merged


def test_a_common_direction_does_not_change_what_merges() -> None:
    """CLAP's geometry: every vector leans towards one direction, every similarity is
    high. the old rule (cross / inner similarity) merged distinct moods there."""
    rng = np.random.default_rng(3)
    a, b = np.eye(DIM)[0], np.eye(DIM)[1]  # two distinct moods
    common = 3.0 * np.eye(DIM)[2]
    # more tracks than dimensions, as a playlist of CLAP's 512 has past a few hundred
    leaning = [blob(common + centre, 40, rng, noise=0.2) for centre in (a, b)]
    points = np.concatenate(leaning)
    # every similarity above 0.6: the old rule (cross / inner similarity) saw one mood
    assert float((points @ points.T).min()) > 0.6
    moods = find_moods(points, 3, seed=4)
    assert sorted(moods.sizes.tolist()) == [40, 40]
    one = blob(common + a, 80, rng, noise=0.2)  # one mood leaning the same way
    assert find_moods(one, 3, seed=4).sizes.tolist() == [80]


def test_nothing_alike_comes_back_as_given() -> None:
    x, y = np.eye(DIM, dtype=np.float32)[:2]
    centroids = np.stack([x, y])
    sizes = np.array([4, 3])
    kept, kept_sizes = merge_alike(centroids, sizes)
    assert kept is centroids
    assert kept_sizes is sizes
