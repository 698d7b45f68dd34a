"""the consumer's position in the firehose: `time_us` of the last event whose work is done.

"done" means enqueued (or deliberately skipped: a skipped or rejected frame needs
no work, so it is done the moment it is judged). the position moves in memory
after every fully handled batch and is written to Redis on an interval and on
shutdown; a crash between two flushes replays at most one interval, which the
rev guard absorbs.

on (re)connect the consumer asks Jetstream for events from the cursor rewound a
few seconds: `time_us` is stamped by each host when the event reached it, so a
small rewind covers events that arrived out of order around the cut, and a
larger one covers a different host whose clock positions the same events
differently.
"""

from __future__ import annotations

import logging

import redis.asyncio as aioredis

from jetstream.frames import MAX_TIME_US
from jetstream.keys import JetstreamKeys

logger = logging.getLogger(__name__)


def rewound(time_us: int, seconds: float) -> int:
    """`time_us` moved back by `seconds`, never below the epoch."""
    return max(0, time_us - round(seconds * 1_000_000))


class CursorStore:
    """the cursor key in Redis (see `jetstream.keys` for why it has no TTL)."""

    def __init__(self, redis: aioredis.Redis, keys: JetstreamKeys) -> None:
        self._redis = redis
        self._key = keys.cursor

    async def load(self) -> int | None:
        raw = await self._redis.get(self._key)
        if raw is None:
            return None
        try:
            time_us = int(raw)
        except ValueError:
            logger.warning("ignoring a malformed stored cursor %r", raw[:64])
            return None
        if not 0 < time_us < MAX_TIME_US:
            logger.warning("ignoring an out-of-range stored cursor %d", time_us)
            return None
        return time_us

    async def save(self, time_us: int) -> None:
        await self._redis.set(self._key, str(time_us))


class Cursor:
    """the done position in memory and what Redis has last been told."""

    def __init__(self, store: CursorStore) -> None:
        self.store = store
        self.done: int | None = None
        self.flushed: int | None = None

    def advance(self, time_us: int) -> None:
        """mark everything up to `time_us` done; never moves backwards (a rewound
        reconnect replays older events, which must not pull the cursor back)."""
        if self.done is None or time_us > self.done:
            self.done = time_us

    def undo_after(self, time_us: int) -> None:
        """the work after `time_us` is gone (Redis lost the tasks it enqueued): the done
        position moves back there, the only move backwards there is."""
        if self.done is not None and time_us < self.done:
            self.done = time_us
            self.flushed = None

    async def resume_position(self) -> int | None:
        """where to resume: this process's own position if it has one (it is at
        least as new as Redis's, and survives Redis losing its data), else Redis's."""
        if self.done is not None:
            return self.done
        stored = await self.store.load()
        self.flushed = stored
        self.done = stored
        return stored

    async def flush(self) -> bool:
        """write the done position if it moved; True when something was written."""
        done = self.done
        if done is None or done == self.flushed:
            return False
        await self.store.save(done)
        self.flushed = done
        return True
