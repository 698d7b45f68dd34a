"""the playlist's matrix: the hashed sample of ids and the rows joined as one array."""

from __future__ import annotations

import random

import numpy as np

from engine.assembly import sample_vectors, sampled_ids
from engine.kmeans import SAMPLE_SIZE


def test_the_sample_depends_on_the_set_of_ids_not_their_order() -> None:
    ids = list(range(1000, 1000 + 7 * 500, 7))
    shuffled = ids[:]
    random.Random(3).shuffle(shuffled)
    first = sampled_ids(dict.fromkeys(ids), SAMPLE_SIZE)  # type: ignore[arg-type]
    second = sampled_ids(dict.fromkeys(shuffled), SAMPLE_SIZE)  # type: ignore[arg-type]
    assert first == second
    assert first == sorted(first)
    assert len(first) == SAMPLE_SIZE
    assert set(first) <= set(ids)


def test_the_sample_is_the_ids_whose_hash_is_lowest() -> None:
    ids = list(range(1, 301))
    keys = {t: (t * 0x9E3779B97F4A7C15) % 2**64 for t in ids}
    expected = sorted(sorted(ids, key=keys.__getitem__)[:10])
    assert sampled_ids(dict.fromkeys(ids), 10) == expected  # type: ignore[arg-type]


def test_at_or_below_the_sample_size_every_id_comes_back_sorted() -> None:
    assert sampled_ids(dict.fromkeys([5, 3, 9]), 3) == [3, 5, 9]  # type: ignore[arg-type]
    assert sampled_ids(dict.fromkeys([5, 3, 9]), None) == [3, 5, 9]  # type: ignore[arg-type]


def test_float32_rows_and_other_rows_give_the_same_matrix() -> None:
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((20, 16)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    native = {t: rows[t].copy() for t in range(20)}  # joined as bytes
    wider = {t: rows[t].astype(np.float64) for t in range(20)}  # concatenated and cast
    strided = {t: np.repeat(rows[t], 2)[::2] for t in range(20)}  # not contiguous
    a, b, c = (sample_vectors(v, None) for v in (native, wider, strided))
    np.testing.assert_allclose(a.matrix, b.matrix, rtol=1e-6)
    np.testing.assert_array_equal(a.matrix, c.matrix)
    assert a.ids == b.ids == c.ids == list(range(20))
    # unit rows: the squared norms k-means reuses come along
    assert a.squared_norms is not None
    np.testing.assert_allclose(a.squared_norms, 1.0, rtol=1e-5)


def test_rows_not_unit_length_are_divided_and_carry_no_squared_norms() -> None:
    vectors = {t: np.full(8, float(t), dtype=np.float32) for t in range(1, 6)}
    sample = sample_vectors(vectors, None)
    np.testing.assert_allclose(np.linalg.norm(sample.matrix, axis=1), 1.0, rtol=1e-6)
    assert sample.squared_norms is None
