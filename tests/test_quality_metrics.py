"""the quality benchmark's measures, on answers worked out by hand."""

from __future__ import annotations

import random

import numpy as np
import pytest

from bench import baseline
from bench.quality_algorithms import seed_kmeans
from bench.quality_metrics import (
    coverage,
    distinct_artists,
    fidelity,
    fidelity_ceiling,
    hit,
    novelty,
    precision,
)


def test_precision_is_the_share_of_answers_in_a_playlist_region() -> None:
    assert precision([1, 1, 2, 9], [1, 2]) == 0.75
    assert precision([9, 9], [1]) == 0.0
    assert precision([], [1]) is None  # nothing answered: no precision, left out of means


def test_coverage_is_the_share_of_playlist_regions_touched() -> None:
    assert coverage([1, 1, 1], [1, 2, 3]) == pytest.approx(1 / 3)
    assert coverage([3, 2, 1, 9], [1, 2, 3]) == 1.0
    assert coverage([], [1, 2]) == 0.0
    with pytest.raises(ValueError, match="at least one region"):
        coverage([1], [])


def test_fidelity_is_one_minus_total_variation_with_an_elsewhere_bin() -> None:
    mix = {1: 0.5, 2: 0.5}
    assert fidelity([1, 2, 1, 2], mix) == 1.0
    # 3/4 vs 1/2 and 1/4 vs 1/2: TV = (0.25 + 0.25) / 2
    assert fidelity([1, 1, 1, 2], mix) == pytest.approx(0.75)
    # half elsewhere: region 1 at 1/2 (exact), region 2 at 0 (off by 1/2), elsewhere 1/2
    assert fidelity([1, 1, 9, 8], mix) == pytest.approx(0.5)
    assert fidelity([9, 9], mix) == 0.0
    assert fidelity([], mix) == 0.0


def test_the_fidelity_ceiling_is_the_best_integer_answer() -> None:
    assert fidelity_ceiling({1: 0.5, 2: 0.5}, 3) == pytest.approx(1 - 1 / 6)  # 2/1 at best
    assert fidelity_ceiling({1: 0.5, 2: 0.5}, 10) == 1.0
    # 0.6 / 0.25 / 0.15 at top 3: (2, 1, 0) beats (1, 1, 1)
    mix = {1: 0.6, 2: 0.25, 3: 0.15}
    assert fidelity_ceiling(mix, 3) == pytest.approx(fidelity([1, 1, 2], mix))
    assert fidelity_ceiling(mix, 3) > fidelity([1, 2, 3], mix)


def test_hit_and_artists() -> None:
    assert hit([4, 5, 6], 5)
    assert not hit([4, 6], 5)
    assert distinct_artists(["a", "b", "a"]) == 2


def test_novelty_counts_tracks_no_other_answer_of_the_group_holds() -> None:
    answers = [[1, 2, 3, 4], [1, 2, 5, 6], [1, 7], [8]]
    groups = ["rock", "rock", "jazz", "folk"]
    # rock: 1 and 2 are shared, 3 4 (first) and 5 6 (second) are new; jazz and folk
    # stand alone in their group, so there is nothing to be novel against
    assert novelty(answers, groups) == [0.5, 0.5, None, None]
    assert novelty([[], [1]], ["a", "a"]) == [None, 1.0]
    with pytest.raises(ValueError, match="one group per answer"):
        novelty([[1]], [])


def test_the_vectorised_seed_kmeans_is_the_pure_python_one() -> None:
    rng = np.random.default_rng(5)
    points = rng.standard_normal((40, 8))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    expected = baseline.kmeans(points.tolist(), 3, random.Random(11))
    got = seed_kmeans(points, 3, random.Random(11))
    np.testing.assert_allclose(got, np.asarray(expected), rtol=1e-9, atol=1e-12)
