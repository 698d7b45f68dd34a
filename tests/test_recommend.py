"""engine.recommend end to end on the embedded exact store."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from engine import FusionMode, Strategy, recommend
from engine.cache import MAX_CACHED_TRACKS
from engine.exact_store import ExactStore
from engine.recommend import DEFAULT_TOP_N
from engine.types import Track
from tests.support.counting import CountingStore
from tests.support.samples import track_vector

CATALOGUE_SIZE = 400


@pytest.fixture
def store() -> ExactStore:
    ids = list(range(1, CATALOGUE_SIZE + 1))
    return ExactStore(ids, np.stack([track_vector(t) for t in ids]))


class AllowList:
    """a TrackLookup that keeps only the ids it allows (eligibility stand-in)."""

    def __init__(self, allowed: set[int], artists: int = 0) -> None:
        self.allowed = allowed
        self.artists = artists  # 0: every track by an artist of its own; n: by artist t % n
        self.calls: list[list[int]] = []

    async def hydrate(self, track_ids: Sequence[int]) -> list[Track]:
        self.calls.append(list(track_ids))
        return [
            Track(t, f"t{t}", f"artist{t % self.artists if self.artists else t}", "d", None)
            for t in track_ids
            if t in self.allowed
        ]


async def test_empty_playlist_asks_nothing(store: ExactStore) -> None:
    counting = CountingStore(store)
    result = await recommend([], counting)
    assert result.strategy is Strategy.NONE
    assert not result.available
    assert counting.calls == []


async def test_no_embeddings_means_unavailable_after_one_lookup(store: ExactStore) -> None:
    counting = CountingStore(store)
    result = await recommend([10_001, 10_002], counting)
    assert result.strategy is Strategy.NONE
    assert result.candidates == []
    assert counting.calls == ["get_vectors"]


@pytest.mark.parametrize(
    ("n", "strategy", "queries"),
    [
        (1, Strategy.DIRECT, 1),
        (3, Strategy.RRF, 3),
        (5, Strategy.RRF, 5),
        (100, Strategy.KMEANS, 3),
    ],
)
async def test_two_store_calls_per_recommendation(
    store: ExactStore, n: int, strategy: Strategy, queries: int
) -> None:
    counting = CountingStore(store)
    result = await recommend(list(range(1, n + 1)), counting)
    assert counting.calls == ["get_vectors", "query_many"]
    assert counting.query_batches == [queries]
    assert result.strategy is strategy
    assert result.query_count == queries
    assert len(result.candidates) == DEFAULT_TOP_N == MAX_CACHED_TRACKS


async def test_playlist_tracks_never_come_back(store: ExactStore) -> None:
    playlist = list(range(1, 60))
    result = await recommend(playlist, store, limit=50)
    assert not set(playlist) & {c.track_id for c in result.candidates}


async def test_unknown_tracks_are_skipped_but_still_excluded(store: ExactStore) -> None:
    result = await recommend([4, 99_999], store)
    assert result.strategy is Strategy.DIRECT
    assert result.embedded_count == 1
    assert 4 not in {c.track_id for c in result.candidates}


async def test_single_track_neighbours_are_the_exact_nearest(store: ExactStore) -> None:
    result = await recommend([8], store, limit=5)
    query = track_vector(8)
    others = [t for t in range(1, CATALOGUE_SIZE + 1) if t != 8]
    distances = {t: 1.0 - float(np.dot(query, track_vector(t))) for t in others}
    expected = sorted(others, key=lambda t: (distances[t], t))[:5]
    assert [c.track_id for c in result.candidates] == expected
    # the test vectors put ids with the same id % 4 in one "sound region"
    assert all(c.track_id % 4 == 0 for c in result.candidates)


async def test_duplicate_track_ids_count_once(store: ExactStore) -> None:
    counting = CountingStore(store)
    result = await recommend([5, 5, 5], counting)
    assert result.strategy is Strategy.DIRECT


async def test_result_does_not_depend_on_playlist_order(store: ExactStore) -> None:
    playlist = list(range(1, 41))
    forward = await recommend(playlist, store)
    backward = await recommend(list(reversed(playlist)), store)
    assert forward.candidates == backward.candidates


async def test_eligibility_filter_fills_the_limit_by_asking_for_more(store: ExactStore) -> None:
    # only 1 in 10 catalogue tracks is eligible: the first round cannot fill 10
    allowed = {t for t in range(1, CATALOGUE_SIZE + 1) if t % 10 == 0}
    catalog = AllowList(allowed)
    counting = CountingStore(store)
    result = await recommend([1, 2, 3], counting, catalog=catalog)
    assert len(result.tracks) == DEFAULT_TOP_N
    assert all(track.id in allowed for track in result.tracks)
    assert [c.track_id for c in result.candidates] == [t.id for t in result.tracks]
    assert counting.calls.count("get_vectors") == 1  # embeddings fetched once
    assert counting.calls.count("query_many") >= 2


async def test_eligibility_stops_when_the_catalogue_runs_out(store: ExactStore) -> None:
    catalog = AllowList({7, 11})
    result = await recommend([1], store, catalog=catalog)
    assert [t.id for t in result.tracks] == sorted(
        [7, 11], key=lambda t: 1.0 - float(np.dot(track_vector(1), track_vector(t)))
    )


async def test_proportional_mode_draws_from_each_cluster(store: ExactStore) -> None:
    # 12 tracks from region 0 (ids % 4 == 0) and 6 from region 1
    playlist = [t for t in range(1, 200) if t % 4 == 0][:12] + [
        t for t in range(1, 200) if t % 4 == 1
    ][:6]
    result = await recommend(playlist, store, fusion=FusionMode.PROPORTIONAL, limit=10)
    assert result.strategy is Strategy.KMEANS
    regions = [c.track_id % 4 for c in result.candidates]
    assert len(regions) == 10
    assert regions.count(0) > regions.count(1) > 0


@pytest.mark.parametrize("limit", [0, 101])
async def test_limit_is_bounded(store: ExactStore, limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        await recommend([1], store, limit=limit)


async def test_playlist_size_is_bounded(store: ExactStore) -> None:
    with pytest.raises(ValueError, match="at most 500"):
        await recommend(list(range(501)), store)


async def test_exact_store_round_trips_through_a_file(store: ExactStore, tmp_path: Path) -> None:
    path = tmp_path / "vectors.npz"
    store.save(path)
    loaded = ExactStore.load(path)
    assert len(loaded) == len(store)
    before = await store.query_many([track_vector(3)], top_k=5, exclude_ids=[3])
    after = await loaded.query_many([track_vector(3)], top_k=5, exclude_ids=[3])
    assert before == after


async def test_exact_store_answers_only_known_ids(store: ExactStore) -> None:
    found = await store.get_vectors([1, 2, 99_999])
    assert set(found) == {1, 2}


async def test_exact_store_excludes_and_bounds(store: ExactStore) -> None:
    everything = list(range(1, CATALOGUE_SIZE + 1))
    lists = await store.query_many([track_vector(1)], top_k=10, exclude_ids=everything[:-3])
    assert [c.track_id for c in lists[0]] == sorted(
        everything[-3:], key=lambda t: 1.0 - float(np.dot(track_vector(1), track_vector(t)))
    )
    with pytest.raises(ValueError, match="top_k"):
        await store.query_many([track_vector(1)], top_k=0, exclude_ids=[])


async def test_a_clusters_mood_survives_its_best_candidates_being_ineligible(
    store: ExactStore,
) -> None:
    # 12 tracks of region 0 and 4 of region 1: region 1 has a cluster of its own, whose
    # nearest candidates are all ineligible. eligibility comes before the slots are
    # handed out, so region 1 still gets one of the first 3.
    playlist = [t for t in range(1, 200) if t % 4 == 0][:12] + [
        t for t in range(1, 200) if t % 4 == 1
    ][:4]
    hidden = {t for t in range(1, CATALOGUE_SIZE + 1) if t % 4 == 1 and t < 300}
    catalog = AllowList(set(range(1, CATALOGUE_SIZE + 1)) - hidden)
    result = await recommend(playlist, store, catalog=catalog)
    regions = [track.id % 4 for track in result.tracks[:3]]
    assert 1 in regions
    assert not hidden & {track.id for track in result.tracks}


async def test_at_most_two_tracks_per_artist_after_eligibility(store: ExactStore) -> None:
    # a region's tracks (ids % 4 == 0) by 4 artists: artist (t // 4) % 4, so each
    # artist has a quarter of the region; one of them is not eligible at all
    everything = set(range(1, CATALOGUE_SIZE + 1))
    catalog = AllowList(everything - {t for t in everything if t % 16 == 4}, artists=16)
    result = await recommend([8, 12], store, catalog=catalog, limit=24)
    artists = [track.artist_handle for track in result.tracks]
    assert len(result.tracks) == 24  # still filled, past the capped and ineligible
    assert max(artists.count(a) for a in artists) <= 2
    assert not {t.id for t in result.tracks} & {t for t in everything if t % 16 == 4}
    uncapped = await recommend([8, 12], store, catalog=catalog, max_per_artist=None)
    handles = [track.artist_handle for track in uncapped.tracks]
    assert max(handles.count(a) for a in handles) > 2  # the cap did something


async def test_the_artist_cap_is_bounded(store: ExactStore) -> None:
    with pytest.raises(ValueError, match="max_per_artist"):
        await recommend([1], store, max_per_artist=0)


async def test_a_small_playlist_gives_each_mood_a_share_of_the_top_3(store: ExactStore) -> None:
    # 3 tracks of region 0 and one of region 1, whose id sorts last: one query per
    # track, one pick each in turn (the default) fills the top 3 with region 0
    result = await recommend([4, 8, 12, 13], store, consensus=True)
    assert result.strategy is Strategy.RRF
    regions = [c.track_id % 4 for c in result.candidates]
    assert regions[:3].count(1) == 1
    assert regions[:8].count(1) == 2  # 1 in 4 slots, as 1 in 4 tracks
    assert set(regions) == {0, 1}
    interleaved = await recommend([4, 8, 12, 13], store)
    assert [c.track_id % 4 for c in interleaved.candidates[:3]] == [0, 0, 0]


def _unit(*components: float) -> np.ndarray:
    vector = np.zeros(8, dtype=np.float32)
    vector[: len(components)] = components
    return vector / np.linalg.norm(vector)


async def test_what_a_small_playlists_tracks_agree_on_comes_first() -> None:
    # two tracks of one mood (around e0), each with a nearest neighbour of its own
    # beyond it (edge tracks 11, 12); ten tracks halfway between them, as near to
    # one as to the other. what both agree on leads the answer (the interleave of
    # their lists opened with 11 and 12)
    playlist = {1: _unit(1, 0.3), 2: _unit(1, -0.3)}
    edges = {11: _unit(1, 0.45, 0.05), 12: _unit(1, -0.45, 0.05)}
    between = {20 + k: _unit(1, 0, 0.02 * k) for k in range(10)}
    vectors = {**playlist, **edges, **between}
    store = ExactStore(list(vectors), np.stack(list(vectors.values())))
    for track, edge in ((1, 11), (2, 12)):  # the setup: each track's nearest is its edge
        nearest = await store.query_many([playlist[track]], top_k=1, exclude_ids=[1, 2])
        assert nearest[0][0].track_id == edge
    result = await recommend([1, 2], store, limit=5, consensus=True)
    assert [c.track_id for c in result.candidates][:3] == [20, 21, 22]
    assert {c.track_id for c in result.candidates[:5]} <= set(between)
    interleaved = await recommend([1, 2], store, limit=5)
    assert [c.track_id for c in interleaved.candidates][:2] == [11, 12]
