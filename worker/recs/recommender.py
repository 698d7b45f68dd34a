"""the one code path from "this playlist, this version, these tracks" to a cache entry.

every writer calls `Recommender.ensure`: the consumer's task, the reconcile loop's,
a private playlist's, a withdrawal refill and the API's miss. so an answer is the
same whoever computed it, it is written under the playlist's lock (the lease's
fencing token checked in the write), never installs a state older than the one
stored, and is screened against withdrawn tracks before it is stored or returned.
the outcome always carries the answer: nobody reads it back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from engine.cache import CachedRecommendations, PlaylistState, cache_key, fingerprint, state_key
from engine.ports import Catalog, VectorStore
from engine.recommend import (
    DEFAULT_FUSION,
    DEFAULT_MAX_PER_ARTIST,
    DEFAULT_TOP_N,
    recommend,
)
from engine.types import MAX_LIST_ITEMS, FusionMode
from worker.recs.version import PlaylistVersion
from worker.store.cache import RecommendationCache
from worker.store.lock import Lease
from worker.store.speculative import Speculated, SpeculativeAnswers, speculative_key
from worker.store.store_budget import one_slot_per_run

logger = logging.getLogger(__name__)

DISABLED = "disabled"  # the strategy recorded when no vector store is configured


class Outcome(StrEnum):
    """what `ensure` did."""

    ALREADY_CACHED = "already_cached"  # this (playlist, version) was done before: idempotent
    REUSED = "reused"  # same set of tracks as the last version (reorder, rename): copied
    COMPUTED = "computed"  # ran the engine
    SPECULATIVE = "speculative"  # computed before the version existed (worker.store.speculative)
    UNAVAILABLE = "unavailable"  # nothing to recommend from (no embeddings, or disabled)


@dataclass(frozen=True, slots=True)
class Seen:
    """what `ensure` reads before it decides: the version's entry, a speculative
    answer for its set of tracks, the playlist's state (the last version computed)."""

    entry: CachedRecommendations | None = None
    speculated: Speculated | None = None
    state: PlaylistState | None = None


@dataclass(frozen=True, slots=True)
class Ensured:
    outcome: Outcome
    value: CachedRecommendations  # the answer as cached (screened), or as computed (no cache)
    seconds: float  # wall time of the engine run (0 when it did not run)


class Recommender:
    """compute recommendations for a version of a playlist and keep them in the cache."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        store: VectorStore | None,
        cache: RecommendationCache | None,
        fusion: FusionMode = DEFAULT_FUSION,
        max_per_artist: int = DEFAULT_MAX_PER_ARTIST,
        speculative: SpeculativeAnswers | None = None,
    ) -> None:
        self.catalog = catalog
        self.store = store  # None: turbopuffer disabled, every answer is "unavailable"
        self.cache = cache  # None: no cache (the API when Redis is down computes fresh)
        self.fusion = fusion
        self.max_per_artist = max_per_artist
        self.speculative = speculative  # None: no speculative answers kept or used

    async def track_ids(self, track_uris: Sequence[str]) -> list[int]:
        """the playlist's track ids in playlist order; tracks plyr.fm doesn't know are skipped."""
        uris = playlist_uris(track_uris)
        if not uris:
            return []
        return ids_in_order(uris, await self.catalog.resolve_tracks(uris))

    async def compute(self, track_ids: Sequence[int]) -> tuple[CachedRecommendations, float]:
        """run the engine (no cache I/O); returns the value and the seconds it took."""
        now = datetime.now(UTC).isoformat()
        track_set = fingerprint(track_ids)
        if self.store is None:
            return CachedRecommendations([], False, DISABLED, track_set, now), 0.0
        started = time.perf_counter()
        # the answer's 10 and a few spares (engine.cache: what a withdrawal leaves);
        # its id lookup and queries share one slot of turbopuffer's budget
        async with one_slot_per_run():
            result = await recommend(
                track_ids,
                self.store,
                limit=DEFAULT_TOP_N,
                fusion=self.fusion,
                catalog=self.catalog,
                max_per_artist=self.max_per_artist,
            )
        elapsed = time.perf_counter() - started
        value = CachedRecommendations(
            result.tracks, result.available, result.strategy.value, track_set, now
        )
        return value, elapsed

    def look_keys(self, version: PlaylistVersion, *, force: bool = False) -> list[str]:
        """the keys `ensure` reads first (none when forced or without a cache): a caller
        that has a round trip to Redis anyway reads them in it and hands `seen` over."""
        if self.cache is None or force:
            return []
        playlist_id = version.playlist_id
        keys = [cache_key(playlist_id, version.token), state_key(playlist_id)]
        if self.speculative is not None:
            keys.append(speculative_key(playlist_id, version.track_uris))
        return keys

    def seen(self, version: PlaylistVersion, raws: Sequence[bytes | None]) -> Seen:
        """`look_keys`' values, as read (in that order)."""
        if self.cache is None or not raws:
            return Seen()
        playlist_id = version.playlist_id
        entry = self.cache.decode_entry(playlist_id, raws[0])
        state = self.cache.decode_state(playlist_id, raws[1])
        speculated = SpeculativeAnswers.decode(raws[2]) if len(raws) > 2 else None
        return Seen(entry, speculated, state)

    async def ensure(
        self,
        version: PlaylistVersion,
        *,
        lease: Lease | None,
        force: bool = False,
        seen: Seen | None = None,
        known_tracks: Mapping[str, int] | None = None,
    ) -> Ensured:
        """make sure the cache holds the answer for `version`, and return it.

        `lease` is the playlist's lock (`worker.store.lock`): the write checks it is
        still held. with `force` (a refresh before expiry, a refill after a
        withdrawal) the engine runs even if the version is cached, and the answer is
        written with a fresh TTL. without a cache (the API while Redis is down) the
        answer is computed and returned, nothing written. `seen`: the values of
        `look_keys`, read by the caller (else read here, in one round trip).
        `known_tracks`: the version's track URIs plyr.fm knows, resolved by the caller
        (`Catalog.resolve_playlist_and_tracks`; else resolved here when needed).
        """
        cache = self.cache
        playlist_id, token = version.playlist_id, version.token
        if seen is None:
            keys = self.look_keys(version, force=force)
            seen = self.seen(version, await cache.redis.mget(keys) if cache and keys else [])
        if cache is not None and not force:
            # a readable entry, not just a key: an entry nobody can read is replaced
            if seen.entry is not None:
                return Ensured(Outcome.ALREADY_CACHED, seen.entry, 0.0)
            # the version someone made by adding a track an answer showed: computed
            # already, from exactly this set of tracks (no turbopuffer, no PostgreSQL)
            speculated = seen.speculated
            if speculated is not None and speculated.value.strategy != DISABLED:
                state = version.state(speculated.track_ids)
                written = await cache.put(playlist_id, token, speculated.value, state, lease=lease)
                return Ensured(Outcome.SPECULATIVE, written.value, 0.0)

        if known_tracks is None:
            track_ids = await self.track_ids(version.track_uris)
        else:
            track_ids = ids_in_order(playlist_uris(version.track_uris), known_tracks)
        state = version.state(track_ids)
        if cache is not None and not force:
            previous = seen.state
            if previous is not None and previous.fingerprint == state.fingerprint:
                earlier = await cache.get(playlist_id, previous.token)
                # never carry a "disabled" answer forward: the store may be enabled now
                if earlier is not None and earlier.strategy != DISABLED:
                    written = await cache.put(playlist_id, token, earlier, state, lease=lease)
                    return Ensured(Outcome.REUSED, written.value, 0.0)

        value, seconds = await self.compute(track_ids)
        if cache is not None:
            value = (await cache.put(playlist_id, token, value, state, lease=lease)).value
        outcome = Outcome.COMPUTED if value.available else Outcome.UNAVAILABLE
        return Ensured(outcome, value, seconds)

    async def speculate(
        self,
        playlist_id: str,
        track_uris: Sequence[str],
        track_ids: Sequence[int],
        shown: Sequence[int],
    ) -> int:
        """compute and keep the answers of the playlist plus each track of `shown` (the
        ids an answer showed), the versions an owner makes by pressing "+"; how many
        were computed (those kept already, or already in the playlist, are not)."""
        if self.speculative is None or self.store is None:
            return 0
        present = set(track_ids)
        uris_of = await self.catalog.track_uris(
            [track_id for track_id in shown if track_id not in present]
        )
        computed = 0
        for track_id, uri in uris_of.items():
            next_uris = [*track_uris, uri]
            if len(next_uris) > MAX_LIST_ITEMS:
                break
            if await self.speculative.exists(playlist_id, next_uris):
                continue
            next_ids = [*track_ids, track_id]
            value, _ = await self.compute(next_ids)
            await self.speculative.put(playlist_id, next_uris, Speculated(tuple(next_ids), value))
            computed += 1
        return computed


def playlist_uris(track_uris: Sequence[str]) -> list[str]:
    """a playlist's track URIs, each once, in order, within the record's bound."""
    return list(dict.fromkeys(track_uris))[:MAX_LIST_ITEMS]


def ids_in_order(uris: Sequence[str], known: Mapping[str, int]) -> list[int]:
    """the ids of the `uris` plyr.fm knows (`known`), in playlist order, each once."""
    return list(dict.fromkeys(known[uri] for uri in uris if uri in known))
