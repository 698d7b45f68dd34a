"""concurrent recomputes' hydrate calls sent to plyr.fm's database as one statement.

the recomputes whose searches shared a turbopuffer request (`engine.coalescing_store`)
are woken by its answer in the same turn of the event loop, and each asks the
catalog next for its candidates, hydrated and screened for eligibility: one
statement per recompute, each a round trip and the client's fixed cost. they go out
as one (`engine.coalescing`): eligibility is a property of the track alone, so the
union of everyone's ids is hydrated once and each caller gets its own, in its own
order. the other calls go to the catalog as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.coalescing import Batches, CoalescingStats
from engine.eligibility import MAX_TRACK_IDS_PER_CALL, distinct_track_ids
from engine.ports import Catalog
from engine.types import PlaylistRef, PlaylistRow, Track


class CoalescingCatalog:
    """`engine.ports.Catalog` over another, sharing `hydrate` between the calls of one
    turn of the event loop."""

    def __init__(self, catalog: Catalog, *, capacity: int = MAX_TRACK_IDS_PER_CALL) -> None:
        self.catalog = catalog
        self.stats = CoalescingStats()
        self._hydrates: Batches[int, list[Track]] = Batches(
            capacity, catalog.hydrate, self.stats, dedupe=True
        )

    def __repr__(self) -> str:
        return f"CoalescingCatalog({self.catalog!r})"

    async def hydrate(self, track_ids: Sequence[int]) -> list[Track]:
        """the eligible tracks among `track_ids`, in their order, hydrated in one
        statement with the other callers' of this turn."""
        # checked here, in the caller, as the catalog checks them: a bad id (or too
        # many) fails this caller, not a shared statement
        wanted = distinct_track_ids(track_ids)
        if not wanted:
            return []
        found: dict[int, Track] = {}
        for answer in await self._hydrates.each(wanted, self.catalog.hydrate):
            found.update((track.id, track) for track in answer)
        # the shared answers hold other callers' tracks too
        return [found[track_id] for track_id in wanted if track_id in found]

    # --- the rest, as they are ---------------------------------------------------------

    async def resolve_tracks(self, track_uris: Sequence[str]) -> dict[str, int]:
        return await self.catalog.resolve_tracks(track_uris)

    async def track_uris(self, track_ids: Sequence[int]) -> dict[int, str]:
        return await self.catalog.track_uris(track_ids)

    async def resolve_playlist(self, playlist_uri: str) -> PlaylistRef | None:
        return await self.catalog.resolve_playlist(playlist_uri)

    async def resolve_playlist_and_tracks(
        self, playlist_uri: str, track_uris: Sequence[str]
    ) -> tuple[PlaylistRef | None, dict[str, int]]:
        return await self.catalog.resolve_playlist_and_tracks(playlist_uri, track_uris)

    async def get_playlist(self, playlist_id: str) -> PlaylistRow | None:
        return await self.catalog.get_playlist(playlist_id)

    async def eligible_ids(self, track_ids: Sequence[int]) -> set[int]:
        return await self.catalog.eligible_ids(track_ids)

    async def list_playlists(self, *, after: str | None, limit: int) -> list[PlaylistRow]:
        return await self.catalog.list_playlists(after=after, limit=limit)

    async def count_playlists(self) -> int:
        return await self.catalog.count_playlists()
