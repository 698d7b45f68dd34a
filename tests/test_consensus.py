"""engine.consensus: the per-track lists of a 2-5-track playlist, slots per mood and
the playlist's consensus first within each."""

from __future__ import annotations

from engine.consensus import SHARED_DEPTH, SHARED_NEIGHBOURS, consensus_fuse, track_moods
from engine.fusion import proportional_fuse
from engine.types import Candidate


def ranked(*ids: int, start: float = 0.1, step: float = 0.01) -> list[Candidate]:
    return [Candidate(t, round(start + i * step, 6)) for i, t in enumerate(ids)]


def ids(candidates: list[Candidate]) -> list[int]:
    return [c.track_id for c in candidates]


def sharing(shared: int, own: int, *, length: int = SHARED_DEPTH) -> list[Candidate]:
    """a list of `length` candidates whose first `shared` are tracks 1.. (common to
    every list made with it) and the rest ids of its own, from `own` on."""
    return ranked(*range(1, shared + 1), *range(own, own + length - shared))


def test_the_threshold_is_a_share_of_the_first_candidates() -> None:
    assert SHARED_DEPTH == 20
    assert SHARED_NEIGHBOURS == 0.15  # 3 of 20


def test_tracks_sharing_enough_neighbours_are_one_mood() -> None:
    assert track_moods([sharing(3, 1000), sharing(3, 2000)]) == [[0, 1]]
    assert track_moods([sharing(2, 1000), sharing(2, 2000)]) == [[0], [1]]


def test_only_the_first_candidates_are_compared() -> None:
    # the lists share 10 tracks, all beyond the first 20 of each
    a = ranked(*range(1000, 1020), *range(1, 11))
    b = ranked(*range(2000, 2020), *range(1, 11))
    assert track_moods([a, b]) == [[0], [1]]
    assert track_moods([a, b], depth=30) == [[0, 1]]


def test_the_share_is_of_the_shorter_list() -> None:
    # 2 of a 10-candidate list (20 %) are in the 20-candidate one (10 %): one mood
    assert track_moods([ranked(1, 2, *range(100, 108)), sharing(2, 1000)]) == [[0, 1]]


def test_moods_are_joined_through_a_track_of_both() -> None:
    a = ranked(*range(1, 6), *range(1000, 1015))  # shares 1-5 with b
    b = ranked(*range(1, 6), *range(50, 55), *range(2000, 2010))  # and 50-54 with c
    c = ranked(*range(50, 55), *range(3000, 3015))
    lone = ranked(*range(4000, 4020))
    assert track_moods([a, lone, c, b]) == [[0, 2, 3], [1]]


def test_empty_lists_are_moods_of_their_own() -> None:
    assert track_moods([[], [], ranked(1)]) == [[0], [1], [2]]
    assert track_moods([]) == []


def test_what_the_tracks_agree_on_comes_before_each_ones_nearest() -> None:
    # one mood of two tracks: each one's nearest neighbour (7, 8) is its own, the
    # next ones (1-6) both share. the plain interleave opened with 7 and 8
    a = ranked(7, 1, 2, 3, 4, 5, 6)
    b = ranked(8, 1, 2, 3, 4, 5, 6)
    assert ids(proportional_fuse([a, b], [1, 1], slots=3)) == [7, 8, 1]
    assert ids(consensus_fuse([a, b], slots=3)) == [1, 2, 3]
    assert ids(consensus_fuse([a, b], slots=10)) == [1, 2, 3, 4, 5, 6, 7, 8]


def test_each_mood_gets_its_share_of_the_slots_its_best_pick_first() -> None:
    # 3 tracks of one mood (sharing 1-20), then a lone track of another mood whose
    # id sorts last: the plain interleave filled the top 3 with the first mood
    mood = [ranked(*range(1, 21), *range(base, base + 80)) for base in (100, 200, 300)]
    lone = ranked(*range(900, 1000))
    assert 900 not in ids(proportional_fuse([*mood, lone], [1, 1, 1, 1], slots=3))
    fused = ids(consensus_fuse([*mood, lone], slots=8))
    assert fused[:2] == [1, 900]
    assert [t >= 900 for t in fused] == [False, True, False, False, False, True, False, False]


def test_a_candidate_serves_the_mood_whose_track_ranks_it_best() -> None:
    # 50 is 1st in the lone track's list and far down the mood's: it is the lone
    # mood's pick, with the lone list's distance
    mood = [ranked(*range(1, 21), 50, *range(base, base + 79)) for base in (100, 200)]
    lone = [Candidate(50, 0.05), *ranked(*range(900, 999))]
    fused = consensus_fuse([*mood, lone], slots=2)
    assert fused == [Candidate(1, 0.1), Candidate(50, 0.05)]


def test_excluded_and_refused_candidates_are_skipped() -> None:
    a = ranked(9, 1, 2, 3)
    b = ranked(9, 1, 2, 3)
    refused = {2}
    fused = consensus_fuse([a, b], slots=3, exclude={1}, accept=lambda c: c.track_id not in refused)
    assert ids(fused) == [9, 3]


def test_ties_break_by_distance_then_id() -> None:
    # 4 and 3 each 1st of one list only (equal scores): the closer first, then the smaller id
    a = [Candidate(4, 0.2), *ranked(*range(10, 16))]
    b = [Candidate(3, 0.3), *ranked(*range(10, 16))]
    assert ids(consensus_fuse([a, b], slots=8))[-2:] == [4, 3]
    c = [Candidate(6, 0.2), *ranked(*range(10, 16))]
    d = [Candidate(5, 0.2), *ranked(*range(10, 16))]
    assert ids(consensus_fuse([c, d], slots=8))[-2:] == [5, 6]


def test_a_track_twice_in_one_list_counts_once_at_its_first_rank() -> None:
    a = ranked(5, 5, 6, 7)  # 5 twice: 6 is rank 2, 7 rank 3
    b = ranked(7, 6, 8)
    # 5 counts once (twice, 1/61 + 1/62 would lead); 7: 1/61 + 1/63 > 6: 2/62 > 5: 1/61
    assert ids(consensus_fuse([a, b], slots=5)) == [7, 6, 5, 8]
