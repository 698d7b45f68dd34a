"""Redis I/O for withdrawals: the withdrawn set, the index of live answers' tracks,
and what the check round leaves for the readers (keys: `engine.keys`).

    plyr:withdrawn                 zset track id -> expiry   what no answer may carry
    plyr:withdrawn-firehose        zset track id -> expiry   those whose record was deleted
    plyr:withdrawn-generation      a token replaced with every change of the set (readers
                                   and writers notice a change by it: one small key; a
                                   random token, never a counter an expiry could reset)
    plyr:withdrawal-live           zset track id -> expiry   the tracks of the live answers
    plyr:withdrawal-carriers:{id}  zset playlist -> expiry     whose answer carried the track
                                   (the member: `carrier_member`, 17 bytes for a UUID)
    plyr:withdrawal-carriers:{id}:{shard}  the same, for the carriers past the first
                                   `CARRIERS_COMPACT` (`carriers_shard_key`)
    plyr:withdrawal-round          the last round's `RoundRecord` (a minute)
    plyr:withdrawal-stats          hash of counters (a week)

members are scored by when they expire (the cache TTL after their last write, in
whole seconds rounded up: `expiry_score`), so
each is dropped when the last answer that could carry it has expired, though the
key itself lives on; every round trims what has expired. the live set is bounded
by the live answers (answers x cached tracks, far fewer distinct tracks), a
carriers set by the playlists, the withdrawn set by `MAX_WITHDRAWN`.

the cache write (`RecommendationCache.put`) is one script that screens the
answer against the withdrawn set and indexes its tracks atomically, so an answer
is either written before a track is marked, and then found among the track's
carriers, or after, and then written without it. a speculative answer's write
(`SpeculativeAnswers.put`) screens it in its script the same way.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from engine.cache import CACHE_TTL_SECONDS
from engine.keys import (
    WITHDRAWAL_CARRIERS_PREFIX,
    WITHDRAWAL_LIVE_KEY,
    WITHDRAWAL_ROUND_KEY,
    WITHDRAWAL_STATS_KEY,
    WITHDRAWN_FIREHOSE_KEY,
    WITHDRAWN_GENERATION_KEY,
    WITHDRAWN_KEY,
)
from engine.withdrawal import RoundRecord, Source

logger = logging.getLogger(__name__)

# the withdrawn set's bound: every API process holds a copy. withdrawals are tracks
# found in live answers (or deleted records plyr.fm knows), so a real set is tiny;
# past the bound the marks closest to expiring go first (counted).
MAX_WITHDRAWN: Final = 50_000
ROUND_RECORD_TTL_SECONDS: Final = 60  # no round for a minute: readers see none at all
STATS_TTL_SECONDS: Final = 7 * 86_400
CARRIER_BATCH: Final = 500  # carriers sets read per pipeline
# a track's carriers set takes this many members, then the next go to one of its
# `CARRIER_SHARDS` overflow sets, by the playlist (`carrier_shard`). Redis keeps a
# sorted set of up to 128 members compact (zset-max-listpack-entries, its default):
# ~30 B a member here, against ~120-140 B past it, whatever the member's size. a
# popular track in a large deployment has thousands of carriers; split, each set
# stays compact up to 128 + 16 x 128 = 2,176 carriers. readers always read every
# shard: one may outlive the root (each key's TTL restarts with its own writes).
CARRIERS_COMPACT: Final = 128
CARRIER_SHARDS: Final = 16


# a carrier is a playlist id. plyr.fm's are UUIDs: kept as their 16 bytes behind this
# marker (a byte no UTF-8 text holds, so an id of any other shape, kept as its text,
# is never mistaken for one). 17 bytes, where the text took 36: the carriers sets hold
# one member per (playlist, track of its answer), ~35 per cached playlist.
UUID_MARKER: Final = b"\xff"


def carriers_key(track_id: int) -> str:
    return f"{WITHDRAWAL_CARRIERS_PREFIX}:{track_id}"


def carriers_shard_key(track_id: int, shard: int) -> str:
    return f"{WITHDRAWAL_CARRIERS_PREFIX}:{track_id}:{shard}"


def carrier_shard(member: bytes) -> int:
    """the overflow set a carrier goes to when its track's first set is full: fixed by
    the playlist, so its later answers land in the same one."""
    return zlib.crc32(member) % CARRIER_SHARDS


def carrier_keys(track_id: int) -> list[str]:
    """every set that may hold the track's carriers (the first, then the shards)."""
    return [carriers_key(track_id)] + [
        carriers_shard_key(track_id, shard) for shard in range(CARRIER_SHARDS)
    ]


def carrier_member(playlist_id: str) -> bytes:
    """a playlist as a member of the carriers sets (`playlist_of` reads it back)."""
    try:
        parsed = uuid.UUID(playlist_id)
    except ValueError:
        return playlist_id.encode()
    if str(parsed) != playlist_id:  # upper case, braces, no dashes: kept as written
        return playlist_id.encode()
    return UUID_MARKER + parsed.bytes


def playlist_of(member: bytes | str) -> str:
    """the playlist id of a carriers member: packed, or the text an earlier release wrote."""
    if isinstance(member, bytes):
        if len(member) == 17 and member.startswith(UUID_MARKER):
            return str(uuid.UUID(bytes=member[1:]))
        return member.decode(errors="replace")
    return member


def expiry_score(now: float, ttl_seconds: int) -> int:
    """an index member's score: when it expires, a whole second (rounded up, so never
    before its answer). a sorted set in Redis's compact encoding keeps an integer score
    in 4 or 6 bytes where a fractional one took its ~18 characters of text."""
    return math.ceil(now + ttl_seconds)


async def withdrawn_now(redis: Any, now: float) -> set[int]:
    """the ids marked withdrawn and not yet expired (the API's copy is fetched so)."""
    members = await redis.zrangebyscore(WITHDRAWN_KEY, now, "+inf", start=0, num=MAX_WITHDRAWN)
    return ids_of(members)


async def read_riders(redis: Any, keys: Sequence[str]) -> list[Any]:
    """the keys that ride along with the API's cache reads, read on their own."""
    return list(await redis.mget(list(keys)))


def ids_of(members: Iterable[bytes | str]) -> set[int]:
    """track ids from sorted-set members (anything that is not an integer is skipped)."""
    ids: set[int] = set()
    for member in members:
        text = member.decode() if isinstance(member, bytes) else member
        if text.lstrip("-").isdigit() and len(text) <= 12:
            ids.add(int(text))
    return ids


# --- the check round, the firehose task and the refill ---------------------------------


class WithdrawalIndex:
    """what the worker's withdrawal tasks read and write."""

    def __init__(self, redis: Any, *, ttl_seconds: int = CACHE_TTL_SECONDS) -> None:
        self.redis = redis
        self.ttl_seconds = ttl_seconds

    async def round_inputs(self) -> tuple[set[int], set[int], set[int]]:
        """(live tracks, withdrawn, withdrawn by the firehose), expired members trimmed."""
        now = time.time()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(WITHDRAWAL_LIVE_KEY, "-inf", now)
            pipe.zremrangebyscore(WITHDRAWN_KEY, "-inf", now)
            pipe.zremrangebyscore(WITHDRAWN_FIREHOSE_KEY, "-inf", now)
            pipe.zrangebyscore(WITHDRAWAL_LIVE_KEY, now, "+inf")
            pipe.zrangebyscore(WITHDRAWN_KEY, now, "+inf")
            pipe.zrangebyscore(WITHDRAWN_FIREHOSE_KEY, now, "+inf")
            _, expired, _, live, withdrawn, firehose = await pipe.execute()
        if expired:
            await self._bump()
        return ids_of(live), ids_of(withdrawn), ids_of(firehose)

    async def withdrawn_among(self, track_ids: Iterable[int]) -> set[int]:
        """which of `track_ids` are marked withdrawn now."""
        ids = list(track_ids)
        if not ids:
            return set()
        scores = await self.redis.zmscore(WITHDRAWN_KEY, [str(track_id) for track_id in ids])
        now = time.time()
        return {
            track_id
            for track_id, score in zip(ids, scores, strict=True)
            if score is not None and float(score) > now
        }

    async def mark(self, track_ids: Iterable[int], source: Source) -> int:
        """mark tracks withdrawn for the cache TTL; how many marks the bound evicted."""
        ids = [str(track_id) for track_id in track_ids]
        if not ids:
            return 0
        expires = time.time() + self.ttl_seconds
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(WITHDRAWN_KEY, dict.fromkeys(ids, expires))
            pipe.expire(WITHDRAWN_KEY, self.ttl_seconds)
            if source is Source.FIREHOSE:
                pipe.zadd(WITHDRAWN_FIREHOSE_KEY, dict.fromkeys(ids, expires))
                pipe.expire(WITHDRAWN_FIREHOSE_KEY, self.ttl_seconds)
            self._queue_bump(pipe)
            pipe.zcard(WITHDRAWN_KEY)
            results = await pipe.execute()
        excess = int(results[-1]) - MAX_WITHDRAWN
        if excess <= 0:
            return 0
        logger.warning("withdrawn set past %d tracks: evicting %d marks", MAX_WITHDRAWN, excess)
        await self.redis.zpopmin(WITHDRAWN_KEY, excess)
        await self._bump()
        return excess

    async def unmark(self, track_ids: Iterable[int]) -> None:
        ids = [str(track_id) for track_id in track_ids]
        if not ids:
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(WITHDRAWN_KEY, *ids)
            pipe.zrem(WITHDRAWN_FIREHOSE_KEY, *ids)
            self._queue_bump(pipe)
            await pipe.execute()

    async def carriers(self, track_ids: Iterable[int]) -> set[str]:
        """the playlists whose live answers carried any of `track_ids`."""
        ids = list(track_ids)
        now = time.time()
        playlists: set[str] = set()
        for start in range(0, len(ids), CARRIER_BATCH):
            async with self.redis.pipeline(transaction=False) as pipe:
                for track_id in ids[start : start + CARRIER_BATCH]:
                    for key in carrier_keys(track_id):
                        pipe.zrangebyscore(key, now, "+inf")
                for members in await pipe.execute():
                    playlists.update(playlist_of(member) for member in members)
        return playlists

    async def count(self, increments: Mapping[str, int]) -> dict[str, int]:
        """add to the service's counters; their totals after."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for name, amount in increments.items():
                if amount:
                    pipe.hincrby(WITHDRAWAL_STATS_KEY, name, amount)
            pipe.expire(WITHDRAWAL_STATS_KEY, STATS_TTL_SECONDS)
            pipe.hgetall(WITHDRAWAL_STATS_KEY)
            results = await pipe.execute()
        return {_text(name): int(value) for name, value in results[-1].items()}

    async def publish(self, record: RoundRecord) -> None:
        """leave the round's record for the readers (it is what makes them trust the set)."""
        await self.redis.set(WITHDRAWAL_ROUND_KEY, record.to_json(), ex=ROUND_RECORD_TTL_SECONDS)

    async def last_round(self) -> RoundRecord | None:
        raw = await self.redis.get(WITHDRAWAL_ROUND_KEY)
        return None if raw is None else RoundRecord.from_json(raw)

    async def _bump(self) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            self._queue_bump(pipe)
            await pipe.execute()

    def _queue_bump(self, pipe: Any) -> None:
        pipe.set(WITHDRAWN_GENERATION_KEY, uuid.uuid4().hex, ex=self.ttl_seconds)


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw
