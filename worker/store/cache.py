"""Redis I/O for the cache contract of `engine.cache`: the one place that reads and
writes recommendation keys and per-playlist state, always with the cache TTL
(`CACHE_TTL_SECONDS`, 24 h by default).

connection faults surface as the Redis client's (`jetstream.faults.REDIS_UNAVAILABLE`):
the worker retries on them, the API falls back to computing fresh.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

from redis.exceptions import WatchError

from engine.cache import (
    CACHE_TTL_SECONDS,
    CachedRecommendations,
    CacheFormatError,
    PlaylistState,
    cache_key,
    state_key,
    versions_key,
)
from engine.keys import DELETED_PREFIX, PLAYLIST_ID_PREFIX, WITHDRAWN_GENERATION_KEY
from jetstream.guard import GuardState, RevGuard
from jetstream.keys import JetstreamKeys
from worker.store import withdrawn
from worker.store.lock import Lease, LeaseLost

logger = logging.getLogger(__name__)

STATE_WRITE_ATTEMPTS = 5  # compare-and-set rounds before the entry is written alone
DELETE_BATCH = 500  # keys per DEL: one playlist's versions seldom reach it
# PLAYLIST_ID_PREFIX: list record URI -> playlist id. DELETED_PREFIX: list record
# URI -> the rev of its delete; a recompute of that record at an older rev (a retry
# or a redelivery that outlived the forget) must not cache it again.


@dataclass(frozen=True, slots=True)
class Written:
    """what a cache write stored: the answer as written (screened against the
    withdrawn set), and whether the playlist's state was written with it."""

    value: CachedRecommendations
    state_written: bool


class RecommendationCache:
    """the recommendations cache over a `redis.asyncio.Redis` (or fakeredis) client."""

    def __init__(
        self,
        redis: Any,
        *,
        ttl_seconds: int = CACHE_TTL_SECONDS,
        list_collection: str = "fm.plyr.list",
    ) -> None:
        # typed Any: redis.asyncio.Redis and fakeredis.FakeAsyncRedis share the API
        # but not a nominal type
        self.redis = redis
        # CACHE_TTL_SECONDS (the setting): every key written here lives this long
        if ttl_seconds <= 0:
            raise ValueError("the cache TTL must be positive")
        self.ttl_seconds = ttl_seconds
        self.counts: Counter[str] = Counter()
        # read only (what the consumer accepted), never recorded from here: the TTL
        # it would record with is not this cache's to choose
        self._guard = RevGuard(redis, JetstreamKeys(list_collection), ttl_seconds=ttl_seconds)

    async def get(self, playlist_id: str, token: str) -> CachedRecommendations | None:
        return self.decode_entry(playlist_id, await self.redis.get(cache_key(playlist_id, token)))

    def decode_entry(self, playlist_id: str, raw: bytes | None) -> CachedRecommendations | None:
        """a cached value as read from Redis, by any transport; an unreadable one is a
        miss (counted; the recompute overwrites it)."""
        if raw is None:
            return None
        try:
            return CachedRecommendations.from_json(raw)
        except CacheFormatError as error:
            self.counts["corrupt_entries"] += 1
            logger.warning("unreadable cache entry for %s: %s", playlist_id, error)
            return None

    async def get_state(self, playlist_id: str) -> PlaylistState | None:
        raw = await self.redis.get(state_key(playlist_id))
        if raw is None:
            return None
        try:
            return PlaylistState.from_json(raw)
        except CacheFormatError as error:
            self.counts["corrupt_states"] += 1
            logger.warning("unreadable playlist state for %s: %s", playlist_id, error)
            return None

    async def put(
        self,
        playlist_id: str,
        token: str,
        value: CachedRecommendations,
        state: PlaylistState | None = None,
        *,
        lease: Lease | None = None,
    ) -> Written:
        """write one version's answer with the TTL, and the playlist's state unless the
        one there is of a newer revision. the answer is written without the tracks
        marked withdrawn, and indexed by its tracks; what was written is returned.

        with `lease` (the playlist's lock, `worker.store.lock`), the write happens only
        while the lock still holds the lease's token, checked in the same transaction:
        else `LeaseLost` and nothing is written.

        the revision check and the write are one compare-and-set (WATCH, retried
        if the state changes meanwhile), so two runs of one playlist that overlap
        still cannot put an older state over a newer. a state that keeps changing
        under us (never seen) is left to its writers after `STATE_WRITE_ATTEMPTS`:
        the entry itself is still written.
        """
        for _ in range(STATE_WRITE_ATTEMPTS):
            try:
                return await self._put_once(playlist_id, token, value, state, lease)
            except WatchError:
                self.counts["state_write_retries"] += 1
        self.counts["state_write_contended"] += 1
        logger.warning("state of %s kept changing; wrote the entry of %s only", playlist_id, token)
        for _ in range(STATE_WRITE_ATTEMPTS - 1):
            try:
                return await self._put_once(playlist_id, token, value, None, lease)
            except WatchError:  # withdrawals landing meanwhile (the entry alone is not watched)
                self.counts["state_write_retries"] += 1
        return await self._put_once(playlist_id, token, value, None, lease)

    async def _put_once(
        self,
        playlist_id: str,
        token: str,
        value: CachedRecommendations,
        state: PlaylistState | None,
        lease: Lease | None,
    ) -> Written:
        async with self.redis.pipeline(transaction=True) as pipe:
            newer_there = False
            # a withdrawal changes the generation: one landing between the screen
            # below and the write makes the write retry (worker.store.withdrawn)
            await pipe.watch(WITHDRAWN_GENERATION_KEY)
            if lease is not None:
                # the fence: a change of the lock (taken over, expired) aborts the EXEC
                await pipe.watch(lease.key)
                if _text_or_none(await pipe.get(lease.key)) != lease.token:
                    self.counts["lease_lost"] += 1
                    raise LeaseLost(f"the lock of {playlist_id} is no longer ours")
            if state is not None:
                await pipe.watch(state_key(playlist_id))
                newer_there = _is_newer(await pipe.get(state_key(playlist_id)), state)
            value = await withdrawn.screen_for_write(pipe, value)
            pipe.multi()
            pipe.set(cache_key(playlist_id, token), value.to_json(), ex=self.ttl_seconds)
            withdrawn.register(pipe, playlist_id, value, ttl_seconds=self.ttl_seconds)
            # the set outlives each member it lists (its TTL restarts with each write)
            versions = versions_key(playlist_id)
            pipe.sadd(versions, token)
            pipe.expire(versions, self.ttl_seconds)
            if state is not None and not newer_there:
                pipe.set(state_key(playlist_id), state.to_json(), ex=self.ttl_seconds)
            await pipe.execute()
            return Written(value, state is not None and not newer_there)

    async def accepted(self, playlist_uri: str) -> GuardState | None:
        """the version of the record the Jetstream consumer accepted last (its rev and
        CID; no CID after a delete), None if it accepted none within its guard's TTL."""
        return (await self._guard.load([playlist_uri])).get(playlist_uri)

    async def remember_playlist(self, playlist_uri: str, playlist_id: str) -> None:
        """keep which playlist a record URI is, so a delete can be forgotten even
        after plyr.fm has dropped its row."""
        await self.redis.set(_uri_key(playlist_uri), playlist_id, ex=self.ttl_seconds)

    async def playlist_id_for(self, playlist_uri: str) -> str | None:
        return await self._text_at(_uri_key(playlist_uri))

    async def deleted_rev(self, playlist_uri: str) -> str | None:
        """the rev of the record's delete, if it was deleted within the TTL."""
        return await self._text_at(_deleted_key(playlist_uri))

    async def _text_at(self, key: str) -> str | None:
        raw = await self.redis.get(key)
        return None if raw is None else _text(raw)

    async def mark_deleted(self, playlist_uri: str, rev: str) -> None:
        """remember that the record was deleted at `rev`, so that nothing older still
        running or retrying writes it back (a re-created record has newer revs)."""
        await self.redis.set(_deleted_key(playlist_uri), rev, ex=self.ttl_seconds)

    async def forget(self, playlist_id: str, *, playlist_uri: str | None = None) -> int:
        """delete every cached version of a playlist and its state; the count deleted.

        the versions come from the playlist's set, not a SCAN: a SCAN walks the
        whole keyspace (every playlist's entries) for each delete.
        """
        versions = versions_key(playlist_id)
        tokens = await self.redis.smembers(versions)
        keys = [cache_key(playlist_id, _text(token)) for token in tokens]
        keys += [state_key(playlist_id), versions]
        if playlist_uri:
            keys.append(_uri_key(playlist_uri))
        deleted = 0
        for start in range(0, len(keys), DELETE_BATCH):
            deleted += int(await self.redis.delete(*keys[start : start + DELETE_BATCH]))
        return deleted


def _is_newer(raw_state: bytes | None, state: PlaylistState) -> bool:
    """whether the stored state is of a newer revision than `state` (revs are TIDs:
    they sort by time; an unknown or unreadable one is never newer)."""
    if raw_state is None or not state.rev:
        return False
    try:
        there = PlaylistState.from_json(raw_state)
    except CacheFormatError:
        return False
    return bool(there.rev) and there.rev > state.rev


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _text_or_none(raw: bytes | str | None) -> str | None:
    return None if raw is None else _text(raw)


def _uri_key(playlist_uri: str) -> str:
    return f"{PLAYLIST_ID_PREFIX}:{playlist_uri}"


def _deleted_key(playlist_uri: str) -> str:
    return f"{DELETED_PREFIX}:{playlist_uri}"
