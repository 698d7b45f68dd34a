"""the adaptive strategy: how many query vectors per N, and determinism."""

from __future__ import annotations

import random

import numpy as np
import pytest

from engine.strategy import plan_queries, usable_vectors
from engine.types import Strategy
from tests.support.samples import track_vector


def vectors(n: int, start: int = 1) -> dict[int, np.ndarray]:
    return {track_id: track_vector(track_id) for track_id in range(start, start + n)}


@pytest.mark.parametrize(
    ("n", "strategy", "queries"),
    [
        (0, Strategy.NONE, 0),
        (1, Strategy.DIRECT, 1),
        (2, Strategy.RRF, 2),
        (5, Strategy.RRF, 5),
        (6, Strategy.KMEANS, 3),
        (7, Strategy.KMEANS, 3),
        (100, Strategy.KMEANS, 3),
        (500, Strategy.KMEANS, 3),
    ],
)
def test_query_vectors_per_n(n: int, strategy: Strategy, queries: int) -> None:
    plan = plan_queries(vectors(n))
    assert plan.strategy is strategy
    assert len(plan.vectors) == queries
    assert plan.embedded_count == n
    # k-means weights count the tracks (on a sample above 128: scaled to N), strays aside
    assert sum(plan.weights) + plan.strays == (n if strategy is Strategy.KMEANS else queries)


def test_k_is_n_over_two_when_that_is_smaller_than_three() -> None:
    # min(3, N // 2) is 3 for every N >= 6; the centroid count can only drop below it
    # when the vectors have fewer distinct directions than that
    same = {t: np.ones(8, dtype=np.float32) for t in range(1, 7)}
    plan = plan_queries(same)
    assert plan.strategy is Strategy.KMEANS
    assert len(plan.vectors) == 1
    assert plan.weights == [6]


def test_single_track_queries_with_its_own_embedding() -> None:
    vector = track_vector(42)
    plan = plan_queries({42: vector})
    np.testing.assert_allclose(plan.vectors[0], vector / np.linalg.norm(vector), rtol=1e-6)


def test_each_embedding_for_two_to_five_in_id_order() -> None:
    plan = plan_queries({9: track_vector(9), 3: track_vector(3)})
    np.testing.assert_allclose(plan.vectors[0], track_vector(3), rtol=1e-5)
    np.testing.assert_allclose(plan.vectors[1], track_vector(9), rtol=1e-5)


def test_centroids_do_not_depend_on_track_order() -> None:
    by_id = vectors(40)
    items = list(by_id.items())
    random.Random(1).shuffle(items)
    shuffled = dict(items)
    first, second = plan_queries(by_id), plan_queries(shuffled)
    assert first.weights == second.weights
    for a, b in zip(first.vectors, second.vectors, strict=True):
        np.testing.assert_array_equal(a, b)


def test_centroids_are_unit_vectors() -> None:
    plan = plan_queries(vectors(30))
    for vector in plan.vectors:
        assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5


def test_zero_non_finite_and_misshapen_vectors_do_not_count() -> None:
    by_id = vectors(3)
    by_id[10] = np.zeros(512, dtype=np.float32)
    by_id[11] = np.full(512, np.nan, dtype=np.float32)
    by_id[12] = np.ones(256, dtype=np.float32)
    ids, matrix = usable_vectors(by_id)
    assert ids == [1, 2, 3]
    assert matrix.shape == (3, 512)
    plan = plan_queries(by_id)
    assert plan.strategy is Strategy.RRF
    assert plan.embedded_count == 3


@pytest.mark.parametrize(
    "odd",
    [
        np.ones((512, 1), dtype=np.float32),
        np.float32(1.0),
        np.ones((1, 512), dtype=np.float32),
        np.ones(513, dtype=np.float32),
    ],
)
def test_vectors_of_other_shapes_are_left_out(odd: np.ndarray) -> None:
    by_id = vectors(3)
    by_id[99] = odd
    ids, matrix = usable_vectors(by_id)
    assert ids == [1, 2, 3]
    assert matrix.shape == (3, 512)


def test_only_unusable_vectors_means_nothing() -> None:
    plan = plan_queries({1: np.zeros(512, dtype=np.float32)})
    assert plan.strategy is Strategy.NONE
    assert plan.vectors == []


def test_without_cluster_sizes_the_centroids_are_the_same_and_weights_flat() -> None:
    by_id = vectors(300)  # above the k-means sample size
    sized = plan_queries(by_id, strays=False)
    flat = plan_queries(by_id, cluster_sizes=False, strays=False)
    assert flat.weights == [1, 1, 1]
    assert sum(sized.weights) == 300
    for a, b in zip(sized.vectors, flat.vectors, strict=True):
        np.testing.assert_array_equal(a, b)
