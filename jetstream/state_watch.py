"""noticing that Redis lost the consumer's state, so the consumer can replay what went with it.

a Redis that restarts without persistence, fails over to an empty replica or is
flushed comes back without the cursor, the rev guard, docket's queue (tasks
enqueued but not yet run) and the cache itself. one that persists with AOF
`everysec` (the usual setting) and is killed, or a replica promoted while it
lagged, comes back without its last second or so of writes: a *partial* loss,
which a marker written once cannot show. the consumer's own position survives
in memory, so it would carry on from there, and whatever that last second held
(tasks enqueued, the revs recorded with them) would be lost for good.

the watch is one key: a random id this process writes when it finds none, and a
counter it bumps at every look, after the cursor's own write. its TTL is
refreshed at every look (a week: only a process that stopped looking could see
it expire, and a new process remembers nothing).

- the id gone (or another one in its place): everything is gone (`Loss.TOTAL`).
  the consumer takes its position back by the cache's lifetime
  (`jetstream_lost_state_rewind_seconds`).
- the id there but the counter lower than the last one written: Redis went
  back in time (`Loss.PARTIAL`). Redis replays its AOF in order, so the cursor
  it still holds was written before the counter it still holds, and everything
  enqueued before that cursor moved is there too: that cursor is the last
  position known to be durable, and the consumer resumes from it.

a loss while no consumer runs cannot be told from a first start (nothing
remembers a marker) and starts where a first start does.
"""

from __future__ import annotations

import uuid
from enum import Enum
from typing import Any

from jetstream.keys import JetstreamKeys


class Loss(Enum):
    NONE = "none"
    PARTIAL = "partial"  # Redis came back with an older copy of its data
    TOTAL = "total"  # Redis came back empty (or another's data)


class StateWatch:
    """remembers the marker this process found (or wrote) in Redis, and its count."""

    def __init__(self, redis: Any, keys: JetstreamKeys, *, ttl_seconds: int) -> None:
        self._redis = redis
        self._key = keys.epoch
        self._ttl_seconds = ttl_seconds
        self._marker: str | None = None
        self._count = 0
        self._unclaimed = Loss.NONE

    async def check(self) -> bool:
        """True when Redis lost state since the last look: a loss, reported once."""
        raw = await self._redis.get(self._key)
        marker, count = _parse(raw)
        loss = Loss.NONE
        if self._marker is not None:
            if marker != self._marker:
                loss = Loss.TOTAL
            elif count < self._count:
                loss = Loss.PARTIAL
        if marker is None:
            marker, count = uuid.uuid4().hex, 0
        self._marker = marker
        self._count = max(count, 0) + 1
        await self._redis.set(self._key, f"{marker}:{self._count}", ex=self._ttl_seconds)
        if loss is not Loss.NONE and self._unclaimed is not Loss.TOTAL:
            self._unclaimed = loss
        return loss is not Loss.NONE

    def take_loss(self) -> Loss:
        """the loss seen since the last call (the next session replays it)."""
        loss, self._unclaimed = self._unclaimed, Loss.NONE
        return loss


def _parse(raw: bytes | str | None) -> tuple[str | None, int]:
    """the marker and its count; a value in the old form (the id alone) counts 0."""
    if raw is None:
        return None, 0
    text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
    marker, _, count = text.partition(":")
    return marker, int(count) if count.isdigit() else 0
