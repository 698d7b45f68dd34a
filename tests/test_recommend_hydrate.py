"""the candidates' hydrate reads the head of each list first (engine.recommend): the
same answers as hydrating every candidate at once, fewer rows when the fusion stays
in the heads, a second statement when it reaches past them."""

from __future__ import annotations

import importlib
import random
from collections.abc import Sequence

import numpy as np
import pytest

from engine import FusionMode, recommend
from engine.exact_store import ExactStore
from engine.recommend import DEFAULT_TOP_N, HYDRATE_SLACK, initial_top_k
from engine.types import Track
from tests.support.samples import track_vector

CATALOGUE_SIZE = 600
# the module (the package's `recommend` is the function)
recommend_module = importlib.import_module("engine.recommend")


@pytest.fixture
def store() -> ExactStore:
    ids = list(range(1, CATALOGUE_SIZE + 1))
    return ExactStore(ids, np.stack([track_vector(t) for t in ids]))


class Catalogue:
    """a TrackLookup: the ids it allows, by artist `t % artists`; records each call."""

    def __init__(self, allowed: set[int], artists: int) -> None:
        self.allowed = allowed
        self.artists = artists
        self.calls: list[list[int]] = []

    async def hydrate(self, track_ids: Sequence[int]) -> list[Track]:
        self.calls.append(list(track_ids))
        return [
            Track(t, f"t{t}", f"artist{t % self.artists}", "d", None)
            for t in track_ids
            if t in self.allowed
        ]


async def answer_hydrating_everything(
    monkeypatch: pytest.MonkeyPatch,
    store: ExactStore,
    playlist: list[int],
    fusion: FusionMode = FusionMode.PROPORTIONAL,
    consensus: bool = False,
    *,
    allowed: set[int],
    artists: int,
) -> list[Track]:
    """the answer as it was before the heads: every candidate hydrated at once."""
    with monkeypatch.context() as patched:
        patched.setattr(recommend_module, "HYDRATE_SLACK", 10**6)
        result = await recommend(
            playlist, store, catalog=Catalogue(allowed, artists), fusion=fusion, consensus=consensus
        )
        return result.tracks


async def test_the_answer_is_the_one_hydrating_everything_gives(
    monkeypatch: pytest.MonkeyPatch, store: ExactStore
) -> None:
    heads_only = past_heads = 0
    for seed in range(60):
        rng = random.Random(seed)
        size = rng.choice([1, 2, 3, 5, 6, 9, 20, 40])
        playlist = rng.sample(range(1, CATALOGUE_SIZE + 1), size)
        # from nearly every track eligible to most of them withdrawn, few to many artists
        share = rng.choice([1.0, 0.9, 0.6, 0.3, 0.1])
        allowed = {t for t in range(1, CATALOGUE_SIZE + 1) if rng.random() < share}
        artists = rng.choice([3, 20, 1000])
        fusion = rng.choice(list(FusionMode))
        consensus = rng.random() < 0.5
        expected = await answer_hydrating_everything(
            monkeypatch, store, playlist, fusion, consensus, allowed=allowed, artists=artists
        )
        catalogue = Catalogue(allowed, artists)
        result = await recommend(
            playlist, store, catalog=catalogue, fusion=fusion, consensus=consensus
        )
        assert result.tracks == expected, seed
        if len(catalogue.calls) == 1:
            heads_only += 1
        else:
            past_heads += 1
    # both ways were taken, many times
    assert heads_only >= 10
    assert past_heads >= 10


async def test_a_fusion_within_the_heads_hydrates_only_them(store: ExactStore) -> None:
    playlist = list(range(1, 21))  # k-means: three lists
    catalogue = Catalogue(set(range(1, CATALOGUE_SIZE + 1)), artists=1000)
    result = await recommend(playlist, store, catalog=catalogue)
    assert len(result.tracks) == DEFAULT_TOP_N
    (asked,) = catalogue.calls  # one statement
    depth = DEFAULT_TOP_N + HYDRATE_SLACK
    assert len(asked) <= result.query_count * depth + len(playlist)
    # where hydrating everything asks about every candidate
    assert len(asked) < result.query_count * initial_top_k(DEFAULT_TOP_N) * 0.6


async def test_a_fusion_past_the_heads_hydrates_the_rest_and_gives_the_same_answer(
    monkeypatch: pytest.MonkeyPatch, store: ExactStore
) -> None:
    playlist = [7]  # one list: its head alone cannot fill the answer
    # half the tracks withdrawn: ~25 of the head's 50 left for 35 places
    rng = random.Random(5)
    allowed = {t for t in range(1, CATALOGUE_SIZE + 1) if rng.random() < 0.5}
    catalogue = Catalogue(allowed, artists=1000)
    result = await recommend(playlist, store, catalog=catalogue, fusion=FusionMode.RRF)
    first, rest = catalogue.calls
    assert len(first) == DEFAULT_TOP_N + HYDRATE_SLACK + 1  # the head and the playlist track
    assert not set(first) & set(rest)  # nothing hydrated twice
    expected = await answer_hydrating_everything(
        monkeypatch, store, playlist, FusionMode.RRF, allowed=allowed, artists=1000
    )
    assert result.tracks == expected
    assert len(result.tracks) == DEFAULT_TOP_N
