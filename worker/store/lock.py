"""one run per playlist at a time: a leased lock in Redis with a fencing token, and
"busy" as a transient fault.

every writer of a playlist's answer (the consumer's task, the reconcile loop's,
a private playlist's, a withdrawal refill, the API's miss, a forget) takes this
one lock, keyed by the playlist's id. its value is the holder's fencing token,
and the cache write (`RecommendationCache.put` with the `Lease`) checks, in the
same atomic script, that the key still holds it: a run whose lease lapsed (a long
pause, a Redis that lost its data) cannot write, even if it never noticed, so it
cannot cache a playlist that was forgotten meanwhile. Redis is both the lock and
the store here, so the fence is a compare inside the write itself rather than a
number the store must order.

two runs of one playlist should not overlap: they would compute twice, and a
forget must not have an older recompute write behind it (the state's "newest
revision wins" holds even then: `RecommendationCache.put` checks it in the
write itself). docket's `ConcurrencyLimit` did this by parking the second run and
waking it when the first released its slot, and that loses edits (docket
0.27, found by tests/test_reliability_faults.py):

- a newer version claimed while an older one runs is parked on a waiter stream;
  a still newer edit then replaces the docket key. when the running one ends,
  docket wakes the parked waiter because the key is "scheduled" again, gives
  it the newest generation, and the newest edit is refused as superseded. the
  playlist ends on its middle version, no fault needed.
- a waiter parked behind a worker that is then SIGKILLed is woken only by a
  one-shot backstop that runs before the dead slot is stale: it waits forever.

here nothing parks. a run that finds the playlist busy raises `PlaylistBusy`,
a transient fault: docket's own retry reschedules it (1 s, 2 s, ...), and that
reschedule carries its generation, so a newer edit supersedes it as usual.
the lock is leased and renewed while its holder runs; a holder that dies
stops renewing and the lock expires one lease later.

renew and release are a compare-and-set in one server-side script
(`worker.store.scripts`): one round trip each. `along` queues a caller's reads in
the acquire's own round trip (a recompute's first reads: `worker.tasks.playlist`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from engine.errors import TransientError
from engine.keys import LOCK_PREFIX
from jetstream.faults import REDIS_UNAVAILABLE
from worker.store.scripts import Script

logger = logging.getLogger(__name__)
_tracer = trace.get_tracer("plyr-recs")

RENEWALS_PER_LEASE: Final = 3
RELEASE_TIMEOUT_SECONDS: Final = 5.0  # a hung Redis must not hold the task up

# KEYS[1] the lock, ARGV[1] the holder's token: delete it only if it is still ours
RELEASE: Final = Script(
    """
    if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
    return 0
    """
)
# ARGV[2] the lease in milliseconds: extend it only if the lock is still ours
RENEW: Final = Script(
    """
    if redis.call('GET', KEYS[1]) == ARGV[1] then
        return redis.call('PEXPIRE', KEYS[1], ARGV[2])
    end
    return 0
    """
)


class PlaylistBusy(TransientError):
    """another run of this playlist holds its lock (retried like any transient fault)."""


class LeaseLost(TransientError):
    """the lock's lease lapsed before the write (another run may hold it now): nothing
    was written, and the task is retried like any transient fault."""


@dataclass(slots=True)
class LeaseEnd:
    """set by a cache write that released the lock in its own script."""

    released: bool = False


@dataclass(frozen=True, slots=True)
class Lease:
    """the held lock: its key and the fencing token the write checks; `along`, what
    the reads queued with the acquire returned (`playlist_lock(along=...)`).

    `ends_with_write`: the first cache write that succeeds under this lease also
    releases it, in the same script (`RecommendationCache.put`), and says so in `end`:
    the block's end then has nothing to release. for a run whose write is its last
    step under the lock (a recompute), that is one round trip fewer."""

    key: str
    token: str
    along: tuple[Any, ...] = ()
    ends_with_write: bool = False
    end: LeaseEnd = field(default_factory=LeaseEnd)


def lock_key(playlist_id: str) -> str:
    return f"{LOCK_PREFIX}:{playlist_id}"


@asynccontextmanager
async def playlist_lock(
    redis: Any,
    playlist_id: str,
    *,
    lease_seconds: float,
    along: Callable[[Any], None] | None = None,
    ends_with_write: bool = False,
) -> AsyncIterator[Lease]:
    """hold the playlist's lock for the block; `PlaylistBusy` if someone else holds it.

    `along(pipeline)` queues commands sent in the same round trip as the acquire,
    after it (so what they read is read under the lock); their results are the
    lease's `along`. they run even when the lock is busy: reads, or idempotent writes.
    `ends_with_write`: the block's cache write releases the lock (`Lease`); nothing
    may then need the lock after that write.
    """
    key = lock_key(playlist_id)
    token = uuid.uuid4().hex
    lease_ms = max(1, round(lease_seconds * 1000))
    results: tuple[Any, ...] = ()
    # a client span for the round trip (OpenTelemetry's API: a no-op unless this
    # process exports traces, `worker.ops.tracing`)
    with _tracer.start_as_current_span("redis lock.acquire", kind=SpanKind.CLIENT):
        if along is None:
            taken = await redis.set(key, token, nx=True, px=lease_ms)
        else:
            async with redis.pipeline(transaction=False) as pipe:
                pipe.set(key, token, nx=True, px=lease_ms)
                along(pipe)
                taken, *rest = await pipe.execute()
            results = tuple(rest)
    if not taken:
        raise PlaylistBusy(playlist_id)
    renewer = _Renewer(redis, key, token, lease_seconds)
    lease = Lease(key, token, results, ends_with_write=ends_with_write)
    try:
        yield lease
    finally:
        # the renewer stops at once; a renewal in flight is cancelled, not waited
        # for, so nothing it is in the middle of can hold the task (and the lock) up
        renewer.stop()
        if not lease.end.released:  # else the write released it
            await _release(redis, key, token, playlist_id)


async def _release(redis: Any, key: str, token: str, playlist_id: str) -> None:
    try:
        with _tracer.start_as_current_span("redis lock.release", kind=SpanKind.CLIENT):
            async with asyncio.timeout(RELEASE_TIMEOUT_SECONDS):
                await RELEASE(redis, [key], [token])
    except (*REDIS_UNAVAILABLE, TimeoutError) as error:
        # it expires one lease from its last renewal
        logger.warning("could not release the lock of %s: %r", playlist_id, error)


class _Renewer:
    """extends the lease every `lease / RENEWALS_PER_LEASE` while the lock is held.

    a timer, not a task looping on a sleep: most runs end before the first renewal
    is due, and then they cost one timer, never a task of their own."""

    def __init__(self, redis: Any, key: str, token: str, lease_seconds: float) -> None:
        self.redis = redis
        self.key = key
        self.token = token
        self.lease_ms = max(1, round(lease_seconds * 1000))
        self.interval = lease_seconds / RENEWALS_PER_LEASE
        self.loop = asyncio.get_running_loop()
        self.renewing: asyncio.Task[None] | None = None
        self.stopped = False
        self.timer = self.loop.call_later(self.interval, self._due)

    def _due(self) -> None:
        if not self.stopped:
            self.renewing = self.loop.create_task(self._renew())

    async def _renew(self) -> None:
        try:
            held = bool(await RENEW(self.redis, [self.key], [self.token, self.lease_ms]))
        except REDIS_UNAVAILABLE as error:
            logger.warning("could not renew %s: %r", self.key, error)
            held = True  # unknown: tried again at the next interval
        if not held:
            logger.warning("lost %s (its lease ran out); another run may start", self.key)
            return
        if not self.stopped:
            self.timer = self.loop.call_later(self.interval, self._due)

    def stop(self) -> None:
        self.stopped = True
        self.timer.cancel()
        if self.renewing is not None:
            self.renewing.cancel()
