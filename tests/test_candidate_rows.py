"""a multi-query's rows into candidates: the fast path (every row usable) gives what
the row-by-row check gives, for any rows an answer may hold."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.candidate_rows import _all_usable, _row_by_row, checked_candidates
from engine.types import Candidate

# what orjson may hand back for an id or a distance, good and bad
ids = st.one_of(
    st.integers(min_value=1, max_value=40),  # small: duplicates and exclusions happen
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
    st.none(),
)
distances = st.one_of(
    st.floats(min_value=0.0, max_value=2.0),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.text(max_size=3),
    st.none(),
)
rows_of = st.one_of(
    st.fixed_dictionaries({"id": ids, "$dist": distances}),
    st.fixed_dictionaries({"id": ids}),
    st.fixed_dictionaries({"$dist": distances}),
    st.lists(st.integers(), max_size=2),
    st.none(),
    st.integers(),
)
good_rows = st.lists(
    st.fixed_dictionaries(
        {"id": st.integers(min_value=1, max_value=10**9), "$dist": st.floats(0.0, 2.0)}
    ),
    max_size=120,
    unique_by=lambda row: row["id"],
)


@settings(max_examples=400)
@given(
    st.lists(rows_of, max_size=30),
    st.integers(min_value=1, max_value=40),
    st.frozensets(st.integers(min_value=1, max_value=40), max_size=5),
)
def test_any_rows_read_as_the_row_by_row_check_reads_them(
    rows: list[Any], top_k: int, excluded: frozenset[int]
) -> None:
    assert checked_candidates(rows, top_k=top_k, excluded=excluded) == _row_by_row(
        rows, top_k=top_k, excluded=excluded
    )


@settings(max_examples=200)
@given(good_rows, st.integers(min_value=1, max_value=200))
def test_an_honest_answer_takes_the_fast_path_with_the_same_result(
    rows: list[dict[str, Any]], top_k: int
) -> None:
    excluded = frozenset({0})
    assert _all_usable(rows, excluded) is not None
    assert checked_candidates(rows, top_k=top_k, excluded=excluded) == _row_by_row(
        rows, top_k=top_k, excluded=excluded
    )


def test_one_bad_row_sends_the_whole_list_the_slow_way() -> None:
    good = [{"id": n, "$dist": n / 10} for n in range(1, 6)]
    for bad in (
        {"id": 3, "$dist": 0.9},  # a duplicate
        {"id": 9, "$dist": math.nan},
        {"id": 9, "$dist": math.inf},
        {"id": True, "$dist": 0.9},
        {"id": 9},
        {"id": 99, "$dist": 0.9},  # excluded
    ):
        rows = [*good, bad]
        assert _all_usable(rows, frozenset({99})) is None
        candidates, rejected = checked_candidates(rows, top_k=10, excluded=frozenset({99}))
        assert candidates == [Candidate(n, n / 10) for n in range(1, 6)]
        assert rejected == 1
    # an int distance is usable, as a float: the slow way, the same candidates
    candidates, rejected = checked_candidates(
        [{"id": 1, "$dist": 0}], top_k=1, excluded=frozenset()
    )
    assert candidates == [Candidate(1, 0.0)]
    assert type(candidates[0].distance) is float
    assert rejected == 0
