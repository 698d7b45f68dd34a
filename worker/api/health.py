"""what `/health` reports, checked at most once a second however often it is asked.

`/health` is unauthenticated, and each call used to ping Redis and query plyr.fm's
database: with 10 ms to the database and a pool of 5, 32 `/health` clients raised
everyone's p50 from 47 to 318 ms, and at 128 `/health` itself reported the
database down (issue 16). now one check runs at a time, its result is reused for
`max_age_seconds`, and every caller of the moment shares it: the checks cost at
most one Redis ping and one primary-key miss per second per process, whatever
the request rate.

the paths (see the README):
- `/health`: the shared report (200 while the process serves; `degraded` says
  which dependency is down); Fly's check reads it;
- `/health/live`: 200, touching nothing (the process and its loop answer);
- `/health/ready`: the shared report, 503 when neither the cache nor plyr.fm's
  database answers (nothing but `available: false` could be served).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

MAX_AGE_SECONDS: Final = 1.0


@dataclass(frozen=True, slots=True)
class Checked:
    redis_ok: bool
    catalog_ok: bool
    at: float  # monotonic


class HealthChecks:
    """single-flight, reused dependency checks (the module doc)."""

    def __init__(
        self,
        *,
        redis_alive: Callable[[], Awaitable[bool]],
        catalog_alive: Callable[[], Awaitable[bool]],
        max_age_seconds: float = MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis_alive = redis_alive
        self._catalog_alive = catalog_alive
        self.max_age_seconds = max_age_seconds
        self._clock = clock
        self._last: Checked | None = None
        self._running: asyncio.Task[Checked] | None = None
        self.checks = 0  # checks run (tests, metrics)

    async def current(self) -> Checked:
        """the last result if fresh, else the one check under way (started if none)."""
        last = self._last
        if last is not None and self._clock() - last.at < self.max_age_seconds:
            return last
        if self._running is None:
            self._running = asyncio.create_task(self._check())
        # shielded: a caller that goes away does not cancel the others' check
        return await asyncio.shield(self._running)

    async def aclose(self) -> None:
        if self._running is not None:
            self._running.cancel()
            await asyncio.gather(self._running, return_exceptions=True)

    async def _check(self) -> Checked:
        try:
            self.checks += 1
            redis_ok, catalog_ok = await asyncio.gather(self._redis_alive(), self._catalog_alive())
            self._last = Checked(redis_ok, catalog_ok, self._clock())
            return self._last
        finally:
            self._running = None
