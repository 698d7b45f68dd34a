"""why each track is recommended (`engine.explain`, `because` on every track)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pytest

from engine import recommend
from engine.cache import CachedRecommendations
from engine.exact_store import ExactStore
from engine.explain import nearest_query, representatives
from engine.strategy import plan_queries
from engine.types import Because, Candidate, Track
from tests.support.samples import track_vector

CATALOGUE_SIZE = 400


@pytest.fixture
def store() -> ExactStore:
    ids = list(range(1, CATALOGUE_SIZE + 1))
    return ExactStore(ids, np.stack([track_vector(t) for t in ids]))


class Titles:
    """a TrackLookup: every id but the `hidden` ones is surfaceable, titled by its id."""

    def __init__(self, hidden: Sequence[int] = ()) -> None:
        self.hidden = set(hidden)
        self.calls = 0

    async def hydrate(self, track_ids: Sequence[int]) -> list[Track]:
        self.calls += 1
        return [
            Track(t, f"title {t}", f"artist{t}", "d", None)
            for t in track_ids
            if t not in self.hidden
        ]


def test_each_query_stands_for_the_playlist_track_most_alike_it() -> None:
    ids = [3, 7, 10]
    matrix = np.stack([track_vector(t) for t in ids])
    assert representatives(ids, matrix, [matrix[1], matrix[0]]) == [7, 3]
    # a centroid of the two alike ones (same region: id % 4 == 3) stands for one of them
    centroid = (matrix[0] + matrix[1]) / 2
    assert representatives(ids, matrix, [centroid])[0] in (3, 7)
    assert representatives(ids, matrix, []) == []


def test_the_plan_says_what_each_query_stands_for() -> None:
    small = plan_queries({t: track_vector(t) for t in (4, 9, 14)})
    assert sorted(small.stands_for) == [4, 9, 14]  # each track its own query
    for query, track in zip(small.vectors, small.stands_for, strict=True):
        assert np.allclose(query, track_vector(track))
    large = plan_queries({t: track_vector(t) for t in range(1, 81) if t % 4 in (1, 2)})
    assert len(large.stands_for) == len(large.vectors)
    assert {track % 4 for track in large.stands_for} == {1, 2}


def test_a_candidate_belongs_to_the_query_it_is_closest_to() -> None:
    lists = [
        [Candidate(1, 0.30), Candidate(2, 0.10)],
        [Candidate(1, 0.20), Candidate(3, 0.50)],
    ]
    assert nearest_query(lists, {1, 2, 3}) == {1: 1, 2: 0, 3: 1}
    # only the tracks asked about (the answer's), whatever the lists hold
    assert nearest_query(lists, {1, 3, 99}) == {1: 1, 3: 1}
    assert nearest_query(lists, set()) == {}


def test_a_tie_goes_to_the_first_list_and_a_track_twice_in_a_list_to_its_closer() -> None:
    lists = [
        [Candidate(5, 0.40), Candidate(6, 0.30), Candidate(6, 0.25)],
        [Candidate(5, 0.40), Candidate(6, 0.25)],
    ]
    assert nearest_query(lists, {5, 6}) == {5: 0, 6: 0}


async def test_a_small_playlists_picks_are_explained_by_their_nearest_playlist_track(
    store: ExactStore,
) -> None:
    playlist = [4, 9, 14]  # three regions (id % 4: 0, 1, 2)
    result = await recommend(playlist, store, limit=12, catalog=Titles(), max_per_artist=None)
    assert result.tracks
    for track in result.tracks:
        assert track.because is not None
        similarity = {p: float(track_vector(p) @ track_vector(track.id)) for p in playlist}
        assert track.because.id == max(similarity, key=similarity.__getitem__)
        assert track.because.title == f"title {track.because.id}"


async def test_a_large_playlists_picks_are_explained_by_their_moods_representative(
    store: ExactStore,
) -> None:
    playlist = [t for t in range(1, 81) if t % 4 in (1, 2)]  # two moods, 40 tracks
    result = await recommend(playlist, store, limit=20, catalog=Titles(), max_per_artist=None)
    reasons = {track.because.id for track in result.tracks if track.because is not None}
    assert len(reasons) == 2  # one representative per mood (the merge kept both moods)
    assert {reason % 4 for reason in reasons} == {1, 2}
    for track in result.tracks:
        assert track.because is not None
        assert track.because.id % 4 == track.id % 4  # a mood explains its own region


async def test_a_playlist_track_that_is_not_surfaceable_explains_nothing(
    store: ExactStore,
) -> None:
    catalog = Titles(hidden=[9])  # a private track of the playlist
    result = await recommend([4, 9], store, limit=8, catalog=catalog, max_per_artist=None)
    explained = {track.id: track.because for track in result.tracks}
    assert any(because is None for because in explained.values())
    assert all(because is None or because.id == 4 for because in explained.values())
    assert catalog.calls == 1  # the titles came with the candidates: one catalog call


def test_because_survives_the_cache_and_is_served() -> None:
    value = CachedRecommendations(
        [Track(5, "five", "a", "A", None, Because(4, "four")), Track(6, "six", "b", "B", None)],
        True,
        "each",
        "f",
        "now",
    )
    again = CachedRecommendations.from_json(value.to_json())
    assert again.tracks == value.tracks
    served = again.response(2)["tracks"]
    assert isinstance(served, list)
    assert served[0]["because"] == {"id": 4, "title": "four"}
    assert "because" not in served[1]  # the seed's fields, unchanged, when unknown


def test_a_track_explained_is_the_track_with_its_because_and_nothing_else_changed() -> None:
    track = Track(7, "a title", "someone.bsky.social", "Someone", "https://img.example/7.jpg")
    because = Because(3, "the reason")
    assert track.explained_by(because) == dataclasses.replace(track, because=because)
    # explained_by builds the track field by field: a new field must be added there too
    assert [f.name for f in dataclasses.fields(Track)] == [
        "id",
        "title",
        "artist_handle",
        "artist_display_name",
        "image_url",
        "because",
    ]
