"""answers for a playlist's likely next versions, computed before anyone asks.

the moment a person waits is right after "+": the page asks again at once, the
new version is not cached yet (the consumer settles edits for a couple of
seconds) and the API would compute inline. so when an answer is served to a
playlist's owner, the playlist plus each track it showed is computed in the
background (`worker.api.speculation`) and kept here, keyed by the *set of track
URIs* (the new version's CID cannot be known before it exists; its tracks can):

    plyr:recommendations-speculative:{playlist_id}:{digest of the URI set}

each entry holds the answer (screened against withdrawn tracks at its write) and
the version's track ids, so the API can serve and cache the new version with no
turbopuffer or PostgreSQL work. entries live `ttl_seconds` (minutes): an edit
is either made soon or not at all.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from engine.cache import MAX_PAYLOAD_BYTES, CachedRecommendations, CacheFormatError
from engine.keys import SPECULATIVE_PREFIX, WITHDRAWN_KEY
from engine.types import MAX_LIST_ITEMS
from engine.withdrawal import screened
from worker.store import withdrawn
from worker.store.scripts import WITHDRAWN_AMONG, Script, outcome

SPECULATIVE_TTL_SECONDS: Final = 600
SCREEN_ATTEMPTS: Final = 5  # writes refused by new withdrawals before the answer is dropped

# a speculative entry's write, screened: KEYS 1 the entry, 2 the withdrawn set; ARGV 1
# the entry's JSON, 2 its TTL, 3 now, 4... the answer's track ids. replies {'ok'}, or
# {'withdrawn', ids...} and nothing written (the answer is screened and written again).
# one round trip, where the WATCH of the withdrawn set's generation, its read and the
# MULTI/EXEC were three
PUT: Final = Script(
    WITHDRAWN_AMONG
    + """
    local ids = {}
    for i = 4, #ARGV do ids[#ids + 1] = ARGV[i] end
    local gone = withdrawn_among(KEYS[2], ids, ARGV[3])
    if #gone > 0 then return {'withdrawn', unpack(gone)} end
    redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
    return {'ok'}
    """
)
# a cached answer's bound, and room for the ids of a full playlist (501 of at most 20 digits)
MAX_SPECULATED_BYTES: Final = MAX_PAYLOAD_BYTES + (MAX_LIST_ITEMS + 1) * 21


def uri_set_digest(track_uris: Sequence[str]) -> str:
    """a digest of the set of track URIs (order and repeats do not matter)."""
    ordered = sorted(set(track_uris[:MAX_LIST_ITEMS]))
    return hashlib.blake2b("\n".join(ordered).encode(), digest_size=16).hexdigest()


def speculative_key(playlist_id: str, track_uris: Sequence[str]) -> str:
    return f"{SPECULATIVE_PREFIX}:{playlist_id}:{uri_set_digest(track_uris)}"


@dataclass(frozen=True, slots=True)
class Speculated:
    """a likely next version's answer, and the track ids it was computed from."""

    track_ids: tuple[int, ...]
    value: CachedRecommendations

    def to_json(self) -> bytes:
        # the answer's own JSON goes in as it is, not parsed and written again
        answer = orjson.Fragment(self.value.to_json())
        return orjson.dumps({"track_ids": list(self.track_ids), "answer": answer})

    @classmethod
    def from_json(cls, raw: bytes | str) -> Speculated:
        if len(raw) > MAX_SPECULATED_BYTES:
            raise CacheFormatError("speculative answer too large")
        try:
            data = orjson.loads(raw)
            track_ids = tuple(int(track_id) for track_id in data["track_ids"])
            value = CachedRecommendations.from_value(data["answer"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise CacheFormatError(f"unreadable speculative answer: {error}") from error
        return cls(track_ids, value)


class SpeculativeAnswers:
    """the speculative entries over a `redis.asyncio.Redis` (or fakeredis) client."""

    def __init__(self, redis: Any, *, ttl_seconds: int = SPECULATIVE_TTL_SECONDS) -> None:
        self.redis = redis
        self.ttl_seconds = ttl_seconds

    async def get(self, playlist_id: str, track_uris: Sequence[str]) -> Speculated | None:
        return self.decode(await self.redis.get(speculative_key(playlist_id, track_uris)))

    @staticmethod
    def decode(raw: bytes | None) -> Speculated | None:
        """an entry as read from Redis, by any transport."""
        if raw is None:
            return None
        try:
            return Speculated.from_json(raw)
        except CacheFormatError:
            return None  # unreadable: computed as if it were not there

    async def exists(self, playlist_id: str, track_uris: Sequence[str]) -> bool:
        return bool(await self.redis.exists(speculative_key(playlist_id, track_uris)))

    async def put(
        self, playlist_id: str, track_uris: Sequence[str], speculated: Speculated
    ) -> None:
        """keep `speculated`, screened against the withdrawn set as it is written: one
        script (`PUT`) checks the answer's tracks and writes atomically; one that finds
        tracks withdrawn writes nothing and names them, and the answer is screened and
        written again (each time it holds fewer tracks), as the cache's write does."""
        key = speculative_key(playlist_id, track_uris)
        value = speculated.value
        for _ in range(SCREEN_ATTEMPTS):
            entry = Speculated(speculated.track_ids, value)
            ids = list(dict.fromkeys(map(str, value.ids())))
            reply = await PUT(
                self.redis,
                [key, WITHDRAWN_KEY],
                [entry.to_json(), self.ttl_seconds, time.time(), *ids],
            )
            if outcome(reply) == "ok":
                return
            value = screened(value, withdrawn.ids_of(reply[1:]))
        # a set that keeps changing: this answer is not needed that badly
