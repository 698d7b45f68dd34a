"""k-means: finds clusters, deterministic, survives degenerate inputs."""

from __future__ import annotations

import numpy as np
import pytest

from engine.kmeans import SAMPLE_SIZE, kmeans


def blobs(sizes: list[int], dim: int = 32, spread: float = 0.05, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((len(sizes), dim)) * 5
    rows = [centres[i] + rng.standard_normal((size, dim)) * spread for i, size in enumerate(sizes)]
    return np.vstack(rows).astype(np.float32)


def partition(labels: np.ndarray) -> set[frozenset[int]]:
    return {frozenset(np.flatnonzero(labels == j).tolist()) for j in np.unique(labels)}


@pytest.mark.parametrize("sizes", [[4, 4, 4], [10, 3, 7], [50, 80, 120], [300, 150, 50]])
def test_recovers_well_separated_clusters(sizes: list[int]) -> None:
    points = blobs(sizes)
    clusters = kmeans(points, 3, seed=7)
    expected = set()
    start = 0
    for size in sizes:
        expected.add(frozenset(range(start, start + size)))
        start += size
    assert partition(clusters.labels) == expected
    assert sorted(clusters.sizes.tolist()) == sorted(sizes)


def test_centroids_are_the_means_of_their_members() -> None:
    points = blobs([20, 30, 40], seed=3)
    clusters = kmeans(points, 3, seed=1)
    for j, centroid in enumerate(clusters.centroids):
        members = points[clusters.labels == j]
        np.testing.assert_allclose(centroid, members.mean(axis=0), rtol=1e-5, atol=1e-5)
        assert clusters.sizes[j] == len(members)


def test_sampled_path_used_above_the_sample_size_still_partitions_everything() -> None:
    sizes = [SAMPLE_SIZE, SAMPLE_SIZE, SAMPLE_SIZE]
    points = blobs(sizes, seed=11)
    clusters = kmeans(points, 3, seed=5)
    assert len(clusters.labels) == len(points)
    assert sorted(clusters.sizes.tolist()) == sizes


def test_same_input_same_seed_same_result() -> None:
    points = blobs([15, 15, 15], spread=2.0, seed=4)  # overlapping: many local optima
    first = kmeans(points, 3, seed=99)
    second = kmeans(points.copy(), 3, seed=99)
    np.testing.assert_array_equal(first.centroids, second.centroids)
    np.testing.assert_array_equal(first.labels, second.labels)


def test_duplicates_give_fewer_distinct_clusters_never_empty_ones() -> None:
    points = np.repeat(np.eye(4, dtype=np.float32)[:2], 5, axis=0)  # 2 distinct points x 5
    clusters = kmeans(points, 3, seed=0)
    assert len(clusters.centroids) == 2
    assert sorted(clusters.sizes.tolist()) == [5, 5]
    assert np.all(clusters.sizes > 0)
    assert len({tuple(c) for c in clusters.centroids.tolist()}) == 2


def test_all_identical_points_make_one_cluster() -> None:
    points = np.ones((9, 8), dtype=np.float32)
    clusters = kmeans(points, 3, seed=0)
    assert len(clusters.centroids) == 1
    assert clusters.sizes.tolist() == [9]


def test_k_larger_than_points() -> None:
    points = blobs([1, 1], seed=2)
    clusters = kmeans(points, 5, seed=0)
    assert len(clusters.centroids) == 2
    assert sorted(clusters.sizes.tolist()) == [1, 1]


def test_zero_vectors_do_not_produce_nan() -> None:
    points = np.vstack([np.zeros((4, 8)), blobs([4, 4], dim=8)]).astype(np.float32)
    clusters = kmeans(points, 3, seed=0)
    assert np.all(np.isfinite(clusters.centroids))
    assert int(clusters.sizes.sum()) == len(points)
    assert frozenset(range(4)) in partition(clusters.labels)


def test_an_emptied_cluster_is_refilled() -> None:
    # a far outlier pulls a seed; the bulk must still split rather than leave a cluster empty
    points = np.vstack([blobs([20, 20], dim=8, seed=6), np.full((1, 8), 1000.0)]).astype(np.float32)
    clusters = kmeans(points, 3, seed=3)
    assert np.all(clusters.sizes > 0)
    assert int(clusters.sizes.sum()) == len(points)


@pytest.mark.parametrize("bad", [np.zeros((0, 4), np.float32), np.zeros(4, np.float32)])
def test_rejects_malformed_input(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="non-empty 2-d"):
        kmeans(bad, 2, seed=0)


def test_rejects_k_below_one() -> None:
    with pytest.raises(ValueError, match="k >= 1"):
        kmeans(blobs([3]), 0, seed=0)
