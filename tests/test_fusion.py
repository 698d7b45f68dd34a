"""fusion: plyr.fm's original RRF rules and the proportional mode."""

from __future__ import annotations

import pytest

from engine.fusion import RRF_K, largest_remainder, proportional_fuse, rrf_fuse
from engine.types import Candidate


def ranked(*ids: int, start: float = 0.1, step: float = 0.1) -> list[Candidate]:
    return [Candidate(t, round(start + i * step, 6)) for i, t in enumerate(ids)]


def ids(candidates: list[Candidate]) -> list[int]:
    return [c.track_id for c in candidates]


def test_rrf_empty_input() -> None:
    assert rrf_fuse([]) == []
    assert rrf_fuse([[], []]) == []


def test_rrf_single_list_keeps_its_order() -> None:
    assert ids(rrf_fuse([ranked(5, 3, 9)])) == [5, 3, 9]


def test_rrf_scores_sum_over_lists() -> None:
    # 2 is 2nd and 1st; 1 is 1st only; 3 is 2nd only: 1/62 + 1/61 > 1/61 > 1/62
    fused = rrf_fuse([ranked(1, 2), ranked(2, 3)])
    assert ids(fused) == [2, 1, 3]


def test_rrf_uses_k_60_and_one_based_ranks() -> None:
    # a track 1st in one list beats one that is 2nd and far down another only
    # if 1/(k+1) > 1/(k+2) + 1/(k+r): with k = 60, r = 3000 keeps 1 ahead ...
    a_then_b = ranked(1, 2)
    long_list = ranked(*range(100, 100 + 40), 2)  # track 2 at rank 41
    fused = rrf_fuse([a_then_b, long_list])
    # 2: 1/62 + 1/101 = 0.02603 ; 1: 1/61 = 0.01639 ; 100: 1/61
    assert ids(fused)[0] == 2
    assert RRF_K == 60


def test_rrf_excludes_playlist_tracks_and_ranks_the_rest_without_gaps() -> None:
    fused = rrf_fuse([ranked(7, 1, 2), ranked(3, 7)], exclude={7})
    assert 7 not in ids(fused)
    # after exclusion, 1 and 3 are both rank 1 of their lists (not rank 2): equal
    # scores, so the closer one (3, at 0.1) leads; 2 is rank 2
    assert ids(fused) == [3, 1, 2]


def test_rrf_keeps_best_distance() -> None:
    fused = rrf_fuse([[Candidate(4, 0.5)], [Candidate(4, 0.2)], [Candidate(4, 0.9)]])
    assert fused == [Candidate(4, 0.2)]


def test_rrf_ties_break_by_distance_then_id() -> None:
    fused = rrf_fuse([[Candidate(9, 0.3)], [Candidate(8, 0.1)], [Candidate(7, 0.3)]])
    assert ids(fused) == [8, 7, 9]


def test_rrf_is_independent_of_list_order() -> None:
    lists = [ranked(1, 2, 3), ranked(3, 4, 5), ranked(5, 6, 1)]
    assert rrf_fuse(lists) == rrf_fuse(list(reversed(lists)))


def test_rrf_counts_a_duplicate_within_one_list_once() -> None:
    fused = rrf_fuse([[Candidate(1, 0.1), Candidate(1, 0.2), Candidate(2, 0.3)], ranked(2)])
    assert ids(fused) == [2, 1]


@pytest.mark.parametrize(
    ("weights", "slots", "expected"),
    [
        ([6, 3, 1], 10, [6, 3, 1]),
        ([1, 1, 1], 10, [4, 3, 3]),
        ([5, 4], 3, [2, 1]),
        ([2, 1], 0, [0, 0]),
        ([0, 0], 5, [0, 0]),
        ([50, 30, 20], 7, [4, 2, 1]),
    ],
)
def test_largest_remainder(weights: list[int], slots: int, expected: list[int]) -> None:
    assert largest_remainder(weights, slots) == expected
    assert sum(largest_remainder(weights, slots)) == (slots if sum(weights) else 0)


def test_proportional_gives_each_list_its_share() -> None:
    lists = [ranked(*range(100, 120)), ranked(*range(200, 220)), ranked(*range(300, 320))]
    fused = proportional_fuse(lists, [6, 3, 1], slots=10)
    picked = ids(fused)
    assert len(picked) == 10
    assert sum(1 for t in picked if 100 <= t < 200) == 6
    assert sum(1 for t in picked if 200 <= t < 300) == 3
    assert sum(1 for t in picked if 300 <= t < 400) == 1
    # each share is filled best-first from its own list
    assert [t for t in picked if t < 200] == list(range(100, 106))


def test_proportional_prefix_is_roughly_proportional() -> None:
    lists = [ranked(*range(100, 120)), ranked(*range(200, 220))]
    picked = ids(proportional_fuse(lists, [2, 1], slots=9))
    first_three = picked[:3]
    assert sum(1 for t in first_three if t < 200) == 2


def test_proportional_skips_duplicates_and_excluded() -> None:
    lists = [ranked(1, 2, 3, 4), ranked(1, 5, 6, 7)]
    picked = ids(proportional_fuse(lists, [1, 1], slots=4, exclude={2}))
    assert len(picked) == len(set(picked)) == 4
    assert 2 not in picked
    # 1 is taken by the first list (heavier or earlier); the second list moves on to 5, 6
    assert set(picked) == {1, 3, 5, 6}


def test_proportional_redistributes_slots_a_short_list_cannot_fill() -> None:
    lists = [ranked(1), ranked(*range(10, 20))]
    picked = ids(proportional_fuse(lists, [5, 5], slots=6))
    assert picked.count(1) == 1
    assert len(picked) == 6


def test_proportional_rejects_mismatched_weights() -> None:
    with pytest.raises(ValueError, match="one weight per"):
        proportional_fuse([ranked(1)], [1, 2], slots=1)


def test_proportional_opens_with_each_lists_best_pick_heaviest_first() -> None:
    lists = [ranked(*range(100, 120)), ranked(*range(200, 220)), ranked(*range(300, 320))]
    picked = ids(proportional_fuse(lists, [6, 3, 1], slots=10))
    # a top 3 shows every mood, even the one with a tenth of the playlist
    assert picked[:3] == [100, 200, 300]


def test_a_heavy_list_that_runs_out_still_leads_in_proportion() -> None:
    # shares (70 and 30 of 100 slots) exceed what each list holds (40): both lists
    # end up with 40 picks, yet the prefix must follow the weights, not the picks
    lists = [ranked(*range(1000, 1040)), ranked(*range(2000, 2040))]
    picked = ids(proportional_fuse(lists, [70, 30], slots=100))
    assert len(picked) == 80
    top_ten = picked[:10]
    assert sum(1 for t in top_ten if t < 2000) == 7
