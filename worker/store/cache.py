"""Redis I/O for the cache contract of `engine.cache`: the one place that reads and
writes recommendation keys and per-playlist state, always with the cache TTL
(`CACHE_TTL_SECONDS`, 24 h by default).

connection faults surface as the Redis client's (`jetstream.faults.REDIS_UNAVAILABLE`):
the worker retries on them, the API falls back to computing fresh.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from engine.cache import (
    CACHE_TTL_SECONDS,
    CachedRecommendations,
    CacheFormatError,
    PlaylistState,
    cache_key,
    state_key,
    tokens_key,
    versions_key,
)
from engine.keys import (
    DELETED_PREFIX,
    PLAYLIST_ID_PREFIX,
    STORE_SLOTS_KEY,
    WITHDRAWAL_LIVE_KEY,
    WITHDRAWN_KEY,
)
from engine.withdrawal import screened
from jetstream.guard import GuardState, RevGuard
from jetstream.keys import JetstreamKeys
from worker.store import store_budget, withdrawn
from worker.store.lock import Lease, LeaseLost, lock_key
from worker.store.scripts import WITHDRAWN_AMONG, Script, outcome

logger = logging.getLogger(__name__)

BEFORE_RECOMPUTE_COMMANDS: Final = 3  # queued by `queue_before_recompute`
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


# the cache write (`RecommendationCache.put`), atomically:
#   KEYS  1 the entry, 2 the playlist's tokens (`tokens_key`), 3 its state, 4 its lock,
#         5 the withdrawn set, 6 the live tracks, 7 turbopuffer's slots, then two per
#         indexed track (the first ids at the end of ARGV, in order): its carriers set
#         and the playlist's overflow shard of it (`withdrawn.CARRIERS_COMPACT`: a full
#         set's new carriers go there)
#   ARGV  1 the entry's JSON, 2 the TTL, 3 the version token, 4 the state's stored form
#         ('' none), 5 the state's rev, 6 the lease's token ('' none), 7 now, 8 now + TTL
#         (the index entries' expiry, whole seconds: `withdrawn.expiry_score`), 9 the
#         playlist as a carrier (`withdrawn.carrier_member`), 10 '1' to release the lock
#         once written, 11 n, 12...11+n the slots to give back, then the answer's track
#         ids (every rank: all are screened), then how many of them are indexed (the
#         ones the entry keeps whole, `CachedRecommendations.stored_whole`: the live
#         tracks a check round re-checks, and the carriers a withdrawal refills; the
#         ranks kept by id are checked when a reader hydrates them), last the carriers
#         a set takes before its overflow (`CARRIERS_COMPACT`)
# the slots are given back whatever the outcome (the engine run that held them is over);
# the lock is released only with a write that succeeded, and only while it is ours.
# replies {'ok', 1 if the state was written}, {'lease_lost'}, or {'withdrawn', ids...}
# (nothing written). revs are TIDs compared byte by byte, as Python compares them (a
# Lua `>` on strings follows the server's locale); an unreadable state is never newer.
WRITE: Final = Script(
    WITHDRAWN_AMONG
    + """
    local function after(a, b)
        for i = 1, math.min(#a, #b) do
            local x, y = string.byte(a, i), string.byte(b, i)
            if x ~= y then return x > y end
        end
        return #a > #b
    end
    local function rev_there(raw)
        -- a packed state (engine.state_codec) names its rev before the deflated JSON
        if string.sub(raw, 1, 3) == 'z1 ' then
            local stop = string.find(raw, '\\n', 4, true)
            if stop then return string.sub(raw, 4, stop - 1) end
            return nil
        end
        local ok, there = pcall(cjson.decode, raw)
        if ok and type(there) == 'table' and type(there.rev) == 'string' then
            return there.rev
        end
        return nil
    end
    local function newer_there(raw, rev)
        if not raw or rev == '' then return false end
        local there = rev_there(raw)
        return there ~= nil and there ~= '' and after(there, rev)
    end
    local ttl, now, expires = ARGV[2], ARGV[7], ARGV[8]
    local slots = tonumber(ARGV[11])
    if slots > 0 then
        redis.call('ZREM', KEYS[7], unpack(ARGV, 12, 11 + slots))
    end
    if ARGV[6] ~= '' and redis.call('GET', KEYS[4]) ~= ARGV[6] then
        return {'lease_lost'}
    end
    local ids = {}
    for i = 12 + slots, #ARGV - 2 do ids[#ids + 1] = ARGV[i] end
    local indexed = tonumber(ARGV[#ARGV - 1])
    local gone = withdrawn_among(KEYS[5], ids, now)
    if #gone > 0 then return {'withdrawn', unpack(gone)} end
    local state_written = 0
    if ARGV[4] ~= '' and not newer_there(redis.call('GET', KEYS[3]), ARGV[5]) then
        redis.call('SET', KEYS[3], ARGV[4], 'EX', ttl)
        state_written = 1
    end
    redis.call('SET', KEYS[1], ARGV[1], 'EX', ttl)
    if indexed > 0 then
        local members = {}
        for i = 1, indexed do
            members[#members + 1] = expires
            members[#members + 1] = ids[i]
        end
        redis.call('ZADD', KEYS[6], unpack(members))
        redis.call('EXPIRE', KEYS[6], ttl)
        local compact = tonumber(ARGV[#ARGV])
        for i = 1, indexed do
            -- the playlist's earlier answers may have carried other tracks: members age
            -- out by their score, trimmed so a popular track's set stays its live carriers
            local set = KEYS[6 + 2 * i]
            redis.call('ZREMRANGEBYSCORE', set, '-inf', now)
            if redis.call('ZCARD', set) >= compact and not redis.call('ZSCORE', set, ARGV[9]) then
                set = KEYS[7 + 2 * i]  -- full: this playlist's overflow shard
                redis.call('ZREMRANGEBYSCORE', set, '-inf', now)
            end
            redis.call('ZADD', set, expires, ARGV[9])
            redis.call('EXPIRE', set, ttl)
        end
    end
    -- the tokens outlive each entry they list (the key's TTL restarts with each write);
    -- a token is scored by its entry's expiry, and those past it are trimmed
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
    redis.call('ZADD', KEYS[2], expires, ARGV[3])
    redis.call('EXPIRE', KEYS[2], ttl)
    if ARGV[10] == '1' and ARGV[6] ~= '' then
        redis.call('DEL', KEYS[4])  -- ours: checked above, in this same script
    end
    return {'ok', state_written}
    """
)


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
        self._keys = JetstreamKeys(list_collection)
        self._guard = RevGuard(redis, self._keys, ttl_seconds=ttl_seconds)

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
        return self.decode_state(playlist_id, await self.redis.get(state_key(playlist_id)))

    def decode_state(self, playlist_id: str, raw: bytes | None) -> PlaylistState | None:
        """a playlist's state as read from Redis; an unreadable one is none (counted)."""
        if raw is None:
            return None
        try:
            return PlaylistState.decode(raw)
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
        while the lock still holds the lease's token: else `LeaseLost` and nothing is
        written.

        one script (`WRITE`), so one round trip: the fence, the screen against the
        withdrawn set, the revision check and the writes happen atomically, and two
        runs of one playlist that overlap still cannot put an older state over a
        newer. a script that finds tracks withdrawn writes nothing and names them;
        the answer is screened and written again (each time it holds fewer tracks).
        """
        while True:
            slots = store_budget.deferred_slots(self.redis)
            keys, args = _write_call(
                playlist_id, token, value, state, lease, self.ttl_seconds, slots
            )
            reply = await WRITE(self.redis, keys, args)
            store_budget.given_back(slots)
            said = outcome(reply)
            if said == "ok":
                if lease is not None and lease.ends_with_write:
                    lease.end.released = True
                return Written(value, bool(int(reply[1])))
            if said == "lease_lost":
                self.counts["lease_lost"] += 1
                raise LeaseLost(f"the lock of {playlist_id} is no longer ours")
            # withdrawn since the answer was computed: a mark landed before this write
            self.counts["screened_at_write"] += 1
            value = screened(value, withdrawn.ids_of(reply[1:]))

    async def accepted(self, playlist_uri: str) -> GuardState | None:
        """the version of the record the Jetstream consumer accepted last (its rev and
        CID; no CID after a delete), None if it accepted none within its guard's TTL."""
        return (await self._guard.load([playlist_uri])).get(playlist_uri)

    def queue_before_recompute(self, pipe: Any, playlist_uri: str, playlist_id: str) -> None:
        """queue (`BEFORE_RECOMPUTE_COMMANDS` commands) what a recompute does first, in
        its lock's round trip: remember which playlist the record is, then read the
        record's delete marker and the version the consumer accepted
        (`before_recompute` decodes them). remembered before the marker is read, a
        forget that marks the record after that read finds the playlist, and waits
        for the lock."""
        pipe.set(_uri_key(playlist_uri), playlist_id, ex=self.ttl_seconds)
        pipe.get(_deleted_key(playlist_uri))
        pipe.get(self._keys.rev(playlist_uri))

    @staticmethod
    def before_recompute(results: Sequence[Any]) -> tuple[str | None, GuardState | None]:
        """(the rev of the record's delete, the version the consumer accepted), from
        the results of `queue_before_recompute`."""
        _, deleted, accepted = results
        return (
            None if deleted is None else _text(deleted),
            None if accepted is None else GuardState.decode(accepted),
        )

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

        the versions come from the playlist's tokens, not a SCAN: a SCAN walks the
        whole keyspace (every playlist's entries) for each delete. the previous
        release's set of them is read too (its entries live a day after a deploy).
        """
        tokens, versions = tokens_key(playlist_id), versions_key(playlist_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrange(tokens, 0, -1)
            pipe.smembers(versions)
            listed, listed_before = await pipe.execute()
        found = {_text(token) for token in [*listed, *listed_before]}
        keys = [cache_key(playlist_id, token) for token in sorted(found)]
        keys += [state_key(playlist_id), tokens, versions]
        if playlist_uri:
            keys.append(_uri_key(playlist_uri))
        deleted = 0
        for start in range(0, len(keys), DELETE_BATCH):
            deleted += int(await self.redis.delete(*keys[start : start + DELETE_BATCH]))
        return deleted


def _write_call(
    playlist_id: str,
    token: str,
    value: CachedRecommendations,
    state: PlaylistState | None,
    lease: Lease | None,
    ttl_seconds: int,
    slots: Sequence[str] = (),
) -> tuple[list[str], list[Any]]:
    """the keys and arguments of one `WRITE`; `slots`, turbopuffer slots it gives back."""
    # the whole tracks first: the script indexes the leading `len(indexed)` ids
    indexed = list(dict.fromkeys(str(track.id) for track in value.stored_whole()))
    ids = list(dict.fromkeys([*indexed, *map(str, value.ids())]))
    lock = lease.key if lease is not None else lock_key(playlist_id)
    carrier = withdrawn.carrier_member(playlist_id)
    shard = withdrawn.carrier_shard(carrier)
    keys = [
        cache_key(playlist_id, token),
        tokens_key(playlist_id),
        state_key(playlist_id),
        lock,
        WITHDRAWN_KEY,
        WITHDRAWAL_LIVE_KEY,
        STORE_SLOTS_KEY,
        *(
            key
            for track_id in indexed
            for key in (
                withdrawn.carriers_key(int(track_id)),
                withdrawn.carriers_shard_key(int(track_id), shard),
            )
        ),
    ]
    now = time.time()
    args: list[Any] = [
        value.to_json(),
        ttl_seconds,
        token,
        state.encode() if state is not None else "",
        state.rev if state is not None else "",
        lease.token if lease is not None else "",
        now,
        withdrawn.expiry_score(now, ttl_seconds),
        carrier,
        "1" if lease is not None and lease.ends_with_write else "",
        len(slots),
        *slots,
        *ids,
        len(indexed),
        withdrawn.CARRIERS_COMPACT,
    ]
    return keys, args


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _uri_key(playlist_uri: str) -> str:
    return f"{PLAYLIST_ID_PREFIX}:{playlist_uri}"


def _deleted_key(playlist_uri: str) -> str:
    return f"{DELETED_PREFIX}:{playlist_uri}"
