"""the whole `engine.recommend` call with the vectors in hand: what `python -m bench
engine` times beside the parts.

the store hands back vectors and candidate lists made up front, and the lookup
hydrates from a dict, so what is timed is the engine alone: deduplicating the
playlist, assembling and normalising the matrix, the strategy and k-means, the
eligibility and artist cap, the fusion, the result. both ports answer without
awaiting anything, so the coroutine runs to its end in one step and no event
loop's overhead is counted either.
"""

from __future__ import annotations

from collections.abc import Coroutine, Iterable, Sequence
from typing import Any

from engine.recommend import DEFAULT_TOP_N, initial_top_k, recommend
from engine.types import Candidate, Track, Vector

LOOKUP_ARTISTS = 40  # artists the in-hand lookup spreads its tracks over (the cap applies)


class InHandStore:
    """a VectorStore answering with what it was given."""

    def __init__(self, vectors: dict[int, Vector], lists: list[list[Candidate]]) -> None:
        self.vectors = vectors
        self.lists = lists

    async def get_vectors(self, track_ids: Sequence[int]) -> dict[int, Vector]:
        return self.vectors

    async def query_many(
        self, vectors: Sequence[Vector], *, top_k: int, exclude_ids: Iterable[int]
    ) -> list[list[Candidate]]:
        return self.lists[: len(vectors)]


class InHandLookup:
    """a TrackLookup over tracks in hand: these, hydrated once elsewhere, or with
    `made_up`, prebuilt ones (every candidate eligible)."""

    def __init__(self, tracks: Iterable[Track]) -> None:
        self.tracks = {track.id: track for track in tracks}

    @classmethod
    def made_up(cls, track_ids: Iterable[int]) -> InHandLookup:
        return cls(
            Track(t, f"track {t}", f"artist{t % LOOKUP_ARTISTS}", "Artist", None) for t in track_ids
        )

    async def hydrate(self, track_ids: Sequence[int]) -> list[Track]:
        tracks = self.tracks
        return [tracks[t] for t in track_ids if t in tracks]


def run_now(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """run a coroutine that never suspends (the in-hand ports never do)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("the coroutine suspended: a port awaited something")


def whole_call(
    vectors: dict[int, Vector], lists: list[list[Candidate]], *, catalog: bool
) -> tuple[InHandStore, InHandLookup | None]:
    store = InHandStore(vectors, lists)
    lookup = (
        InHandLookup.made_up(c.track_id for ranked in lists for c in ranked) if catalog else None
    )
    return store, lookup


def top_k() -> int:
    """the candidates per query a default `recommend` asks for."""
    return initial_top_k(DEFAULT_TOP_N)


def call(store: InHandStore, lookup: InHandLookup | None, track_ids: list[int]) -> object:
    return run_now(recommend(track_ids, store, catalog=lookup))
