"""a multi-query's rows checked into candidates: the part of reading an answer that
runs once per row (3 x 115 rows a typical recompute), so it has a fast path.

a row is usable when it is a mapping with an `id` that is an exact int (orjson's:
a bool, a float, a string or a null is refused), not excluded and not seen before
in the list, and a `$dist` that is a finite float or int. the row-by-row check
(`_row_by_row`) says so of each row in Python, ~1 µs a row. an honest answer's
rows are all usable, which a few C-speed passes over the whole list can show
(`_all_usable`): then the candidates are built straight from the two columns,
with the same result. anything else (one bad row, an int distance) takes the row-by-row
path, whose answer and count of refused rows are the reference
(`tests/test_candidate_rows.py` holds the two paths to the same output).
"""

from __future__ import annotations

import math
from typing import Any

from engine.types import Candidate


def checked_candidates(
    rows: list[Any], *, top_k: int, excluded: frozenset[int]
) -> tuple[list[Candidate], int]:
    """the first `top_k` usable rows as candidates, in order, and how many rows were
    refused (over all of them)."""
    columns = _all_usable(rows, excluded)
    if columns is None:
        return _row_by_row(rows, top_k=top_k, excluded=excluded)
    ids, distances = columns
    # positional, through map: a frozen dataclass's keyword call costs half as much again
    return list(map(Candidate, ids[:top_k], distances[:top_k])), 0


def _all_usable(rows: list[Any], excluded: frozenset[int]) -> tuple[list[int], list[float]] | None:
    """(ids, distances) when every row is usable with a float distance, else None."""
    try:
        ids = [row["id"] for row in rows]
        distances = [row["$dist"] for row in rows]
    except (KeyError, TypeError):  # a row without one, or not a mapping
        return None
    if not all(type(track_id) is int for track_id in ids):
        return None
    if not all(type(distance) is float for distance in distances):
        return None
    # all finite: a sum of finite floats is finite unless it overflows, and a NaN or
    # an infinity anywhere makes it NaN or infinite (an overflow only sends it the slow way)
    if not math.isfinite(sum(distances)):
        return None
    if len(set(ids)) != len(ids) or not excluded.isdisjoint(ids):
        return None
    return ids, distances


def _row_by_row(
    rows: list[Any], *, top_k: int, excluded: frozenset[int]
) -> tuple[list[Candidate], int]:
    candidates: list[Candidate] = []
    seen: set[int] = set()
    rejected = 0
    for row in rows:
        try:
            track_id, distance = row["id"], row["$dist"]
        except (KeyError, TypeError):  # no distance, or not a row at all
            rejected += 1
            continue
        # orjson gives exact ints and floats: a bool, a string or a null is refused
        if (
            type(track_id) is not int
            or track_id in excluded
            or track_id in seen
            or type(distance) not in (float, int)
            or not math.isfinite(distance)
        ):
            rejected += 1
            continue
        seen.add(track_id)
        candidates.append(Candidate(track_id=track_id, distance=float(distance)))
    return candidates[:top_k], rejected
