"""which playlists are in use, as this service sees it: viewed through the API.

an active playlist's cache entry is refreshed before it expires (the reconcile
loop, `worker.tasks.reconcile_pass`), so opening its editor is always a read.
"viewed" is written here by the API; "edited" needs no write: plyr.fm's
`updated_at`, which the reconcile reads anyway, says when.

    plyr:recommendations-activity:{playlist_id}   "1", lives REFRESH_ACTIVE_DAYS

the API's hot path must not pay for this: `touch` only notes the id in memory;
the ids noted in one turn of the event loop leave together as one pipeline of
SETs, sent in the background (no round trip on the request's path). a playlist
touched in the last `rewrite_after_seconds` is not written again: the key lives
days, so rewriting it on every view would be a write per hit for nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Final

from engine.keys import ACTIVITY_PREFIX
from jetstream.faults import REDIS_UNAVAILABLE

logger = logging.getLogger(__name__)

MAX_REMEMBERED: Final = 100_000  # ids whose last write is remembered (then forgotten at once)
MAX_PENDING: Final = 10_000  # ids waiting for a write; past it a touch is dropped (counted)
FLUSH_TIMEOUT_SECONDS: Final = 1.0


def activity_key(playlist_id: str) -> str:
    return f"{ACTIVITY_PREFIX}:{playlist_id}"


def active_days_seconds(days: float) -> int:
    return max(1, int(days * 86_400))


class ActivityLog:
    """the API's record of views, written in the background and batched."""

    def __init__(
        self, redis: Any, *, ttl_seconds: int, rewrite_after_seconds: float | None = None
    ) -> None:
        self.redis = redis
        self.ttl_seconds = ttl_seconds
        # an hour, or less when the activity window itself is short (tests)
        self.rewrite_after_seconds = (
            rewrite_after_seconds
            if rewrite_after_seconds is not None
            else min(3600.0, ttl_seconds / 24)
        )
        self._written: dict[str, float] = {}  # playlist id -> monotonic time of its last write
        self._pending: set[str] = set()
        self._flushes: set[asyncio.Task[None]] = set()
        self.writes = 0  # keys written
        self.dropped = 0  # touches not written (too many pending, or Redis failing)

    def touch(self, playlist_id: str) -> None:
        """note a view of `playlist_id`; never blocks, never raises."""
        now = time.monotonic()
        last = self._written.get(playlist_id)
        if last is not None and now - last < self.rewrite_after_seconds:
            return
        if len(self._pending) >= MAX_PENDING:
            self.dropped += 1
            return
        if not self._pending:
            try:
                asyncio.get_running_loop().call_soon(self._flush_soon)
            except RuntimeError:  # no loop: nothing to write with
                self.dropped += 1
                return
        self._pending.add(playlist_id)

    async def aclose(self) -> None:
        """send what is pending and wait for the writes in flight."""
        self._flush_soon()
        await asyncio.gather(*self._flushes, return_exceptions=True)

    def _flush_soon(self) -> None:
        if not self._pending:
            return
        ids, self._pending = list(self._pending), set()
        flush = asyncio.create_task(self._flush(ids))
        self._flushes.add(flush)
        flush.add_done_callback(self._flushes.discard)

    async def _flush(self, playlist_ids: list[str]) -> None:
        try:
            async with asyncio.timeout(FLUSH_TIMEOUT_SECONDS):
                async with self.redis.pipeline(transaction=False) as pipe:
                    for playlist_id in playlist_ids:
                        pipe.set(activity_key(playlist_id), b"1", ex=self.ttl_seconds)
                    await pipe.execute()
        except (*REDIS_UNAVAILABLE, TimeoutError) as error:
            # a lost view costs at most one refresh; the next view writes it again
            self.dropped += len(playlist_ids)
            logger.debug("activity of %d playlists not written: %s", len(playlist_ids), error)
            return
        now = time.monotonic()
        if len(self._written) + len(playlist_ids) > MAX_REMEMBERED:
            self._written.clear()
        for playlist_id in playlist_ids:
            self._written[playlist_id] = now
        self.writes += len(playlist_ids)


async def mark_active(redis: Any, playlist_id: str, *, ttl_seconds: int) -> None:
    """mark one playlist active now (a healed edit: the firehose would have)."""
    await redis.set(activity_key(playlist_id), b"1", ex=ttl_seconds)
