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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson
from redis.exceptions import WatchError

from engine.cache import MAX_PAYLOAD_BYTES, CachedRecommendations, CacheFormatError
from engine.keys import SPECULATIVE_PREFIX, WITHDRAWN_GENERATION_KEY
from engine.types import MAX_LIST_ITEMS
from worker.store import withdrawn

SPECULATIVE_TTL_SECONDS: Final = 600
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
        """keep `speculated`, screened against the withdrawn set as it is written (a
        withdrawal landing meanwhile makes the write retry, as the cache's does)."""
        key = speculative_key(playlist_id, track_uris)
        for _ in range(5):
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(WITHDRAWN_GENERATION_KEY)
                    value = await withdrawn.screen_for_write(pipe, speculated.value)
                    pipe.multi()
                    entry = Speculated(speculated.track_ids, value)
                    pipe.set(key, entry.to_json(), ex=self.ttl_seconds)
                    await pipe.execute()
                    return
                except WatchError:  # a withdrawal landed meanwhile: screen again
                    continue
        # a set that keeps changing: this answer is not needed that badly
