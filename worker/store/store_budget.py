"""turbopuffer's concurrency budget, shared by every worker and API process through Redis.

turbopuffer allows a namespace a limited number of concurrent queries (16 by
default); every process of this service queries the same namespace, and adding
workers is how a deployment scales, so a per-process limit cannot hold it. each
request to the store takes a slot here first:

    plyr:turbopuffer-slots   a sorted set: one member per request in flight,
                             scored by when its lease ends

a slot is taken by a compare-and-set (WATCH, count the live members, add one), so
two processes never both take the last; a process that dies holding slots loses
them when their leases end (`lease_seconds`, above the store's own timeout). the
API's misses come first: background work (the workers) may hold at most
`limit - reserved` slots, so a person waiting on an inline compute never queues
behind a cold deploy's thousands of recomputes. a background request that finds
no slot within `background_wait_seconds` (1 s: a request holds one for tens of
milliseconds) raises `StoreBudgetExhausted`, a transient fault (docket retries the
task with backoff); an API request waits for one, at most `wait_seconds`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any, Final

from redis.exceptions import WatchError

from engine.keys import STORE_SLOTS_KEY
from engine.ports import TransientStoreError, VectorStore
from engine.types import Candidate, Vector

WAIT_STEP_SECONDS: Final = 0.01
CONTENDED_ATTEMPTS: Final = 20  # compare-and-set rounds lost to other takers before giving up

# work an API process does that nobody waits for (speculative answers): it takes the
# workers' share of the budget, never the slots kept for misses
_background: ContextVar[bool] = ContextVar("store_budget_background", default=False)


@contextmanager
def background_work() -> Iterator[None]:
    """store requests made in the block count as background work, whatever the store."""
    token = _background.set(True)
    try:
        yield
    finally:
        _background.reset(token)


class StoreBudgetExhausted(TransientStoreError):
    """every turbopuffer slot this work may use is taken: retried later."""


class SharedStoreBudget:
    """the slots of the whole deployment, in Redis."""

    def __init__(
        self,
        redis: Any,
        *,
        limit: int,
        reserved: int,
        lease_seconds: float,
        wait_seconds: float,
        background_wait_seconds: float = 1.0,
        clock: Any = time.time,
    ) -> None:
        if not 0 <= reserved < limit:
            raise ValueError("the API's reserved slots must leave some for the workers")
        self.redis = redis
        self.limit = limit
        self.reserved = reserved
        self.lease_seconds = lease_seconds
        self.wait_seconds = wait_seconds
        self.background_wait_seconds = background_wait_seconds
        self._clock = clock
        self.waits = 0  # requests that found no slot at once (for tests and /metrics)
        self.refused = 0

    @asynccontextmanager
    async def slot(self, *, foreground: bool) -> AsyncIterator[None]:
        """hold one slot for the block (`foreground`: an API miss, which may use the
        reserved slots; else a worker's, which waits less and then fails, transient)."""
        holder = uuid.uuid4().hex
        foreground = foreground and not _background.get()
        ceiling = self.limit if foreground else self.limit - self.reserved
        wait = self.wait_seconds if foreground else self.background_wait_seconds
        deadline = time.monotonic() + wait
        while not await self._take(holder, ceiling):
            if time.monotonic() >= deadline:
                self.refused += 1
                raise StoreBudgetExhausted(
                    f"all {ceiling} turbopuffer slots this work may use are taken"
                )
            self.waits += 1
            await asyncio.sleep(WAIT_STEP_SECONDS)
        try:
            yield
        finally:
            await self.redis.zrem(STORE_SLOTS_KEY, holder)

    async def _take(self, holder: str, ceiling: int) -> bool:
        """take a slot if fewer than `ceiling` are held; whether it was taken."""
        for _ in range(CONTENDED_ATTEMPTS):
            now = self._clock()
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(STORE_SLOTS_KEY)
                    live = await pipe.zcount(STORE_SLOTS_KEY, now, "+inf")
                    if live >= ceiling:
                        return False
                    pipe.multi()
                    pipe.zremrangebyscore(STORE_SLOTS_KEY, "-inf", now)  # leases of the dead
                    pipe.zadd(STORE_SLOTS_KEY, {holder: now + self.lease_seconds})
                    pipe.expire(STORE_SLOTS_KEY, max(1, round(self.lease_seconds)))
                    await pipe.execute()
                    return True
                except WatchError:  # another request took or gave one meanwhile: look again
                    continue
        return False

    async def in_use(self) -> int:
        return int(await self.redis.zcount(STORE_SLOTS_KEY, self._clock(), "+inf"))


class BudgetedStore:
    """a `VectorStore` whose every request holds a slot of the shared budget."""

    def __init__(self, inner: VectorStore, budget: SharedStoreBudget, *, foreground: bool) -> None:
        self.inner = inner
        self.budget = budget
        self.foreground = foreground

    async def get_vectors(self, track_ids: Sequence[int]) -> dict[int, Vector]:
        async with self.budget.slot(foreground=self.foreground):
            return await self.inner.get_vectors(track_ids)

    async def query_many(
        self, vectors: Sequence[Vector], *, top_k: int, exclude_ids: Iterable[int]
    ) -> list[list[Candidate]]:
        async with self.budget.slot(foreground=self.foreground):
            return await self.inner.query_many(vectors, top_k=top_k, exclude_ids=exclude_ids)

    async def aclose(self) -> None:
        closer = getattr(self.inner, "aclose", None)
        if closer is not None:
            await closer()
