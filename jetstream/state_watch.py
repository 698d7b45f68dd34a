"""noticing that Redis lost the consumer's state, so the consumer can replay what went with it.

a Redis that restarts without persistence, fails over to an empty replica or is
flushed comes back without the cursor, the rev guard, docket's queue (tasks
enqueued but not yet run) and the cache itself. the consumer's own position
survives in memory, so it would carry on from there and every playlist whose
last edit came before the loss would stay uncomputed (found by
tests/test_reliability_faults.py, "redis killed, data lost").

the watch is a marker key: a random id this process writes when it finds none
and remembers, its TTL refreshed at every look (a week: only a process that
stopped looking could see it expire, and a new process remembers nothing).
the marker gone (or another one in its place) means the state this process
built is gone too. the consumer then takes its position back by the cache's
lifetime (`jetstream_lost_state_rewind_seconds`) and reads on from there: with
the rev guard empty every change replayed is enqueued again, and the cache is
rebuilt as it was. a loss while no consumer runs cannot be told from a first
start (nothing remembers a marker) and starts where a first start does.
"""

from __future__ import annotations

import uuid
from typing import Any

from jetstream.keys import JetstreamKeys


class StateWatch:
    """remembers the marker this process found (or wrote) in Redis."""

    def __init__(self, redis: Any, keys: JetstreamKeys, *, ttl_seconds: int) -> None:
        self._redis = redis
        self._key = keys.epoch
        self._ttl_seconds = ttl_seconds
        self._marker: bytes | None = None
        self._unclaimed_loss = False

    async def check(self) -> bool:
        """True when the marker this process saw is gone: a loss, reported once."""
        current = await self._redis.getex(self._key, ex=self._ttl_seconds)
        if current is not None and current == self._marker:
            return False
        if current is None:
            current = uuid.uuid4().hex.encode()
            await self._redis.set(self._key, current, ex=self._ttl_seconds)
        lost = self._marker is not None
        self._marker = current
        self._unclaimed_loss = self._unclaimed_loss or lost
        return lost

    def take_loss(self) -> bool:
        """whether a loss was seen since the last call (the next session replays it)."""
        lost, self._unclaimed_loss = self._unclaimed_loss, False
        return lost
