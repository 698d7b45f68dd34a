"""when the API stops asking Redis for a while: a breaker over the cache's faults.

one failed read says little: the Redis client already sent it again on a fresh
connection (`worker.wiring.connect_redis`), so what reaches here is a read that
failed twice, or one that outlasted the API's own bound (0.5 s) on a busy
machine. skipping the cache for the whole process on that one read made every
request for the next two seconds an inline compute, which on a saturated
process feeds itself. the breaker opens only after `failures_to_open` faults in
a row (any read that works resets the count), stays open `open_seconds`, then
lets reads through again by itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class CacheBreaker:
    """consecutive cache faults, and whether the cache is to be skipped now."""

    def __init__(
        self,
        *,
        failures_to_open: int,
        open_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures_to_open < 1:
            raise ValueError("failures_to_open must be at least 1")
        self.failures_to_open = failures_to_open
        self.open_seconds = open_seconds
        self._clock = clock
        self._in_a_row = 0
        self._open_until = 0.0

    @property
    def closed(self) -> bool:
        """whether the cache is to be asked (True), or skipped for now."""
        return self._clock() >= self._open_until

    def succeeded(self) -> None:
        self._in_a_row = 0

    def failed(self) -> bool:
        """count a fault; True when it opened the breaker (it was closed before)."""
        self._in_a_row += 1
        if self._in_a_row < self.failures_to_open:
            return False
        was_closed = self.closed
        self._open_until = self._clock() + self.open_seconds
        return was_closed
