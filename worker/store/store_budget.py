"""turbopuffer's concurrency budget, shared by every worker and API process through Redis.

turbopuffer allows a namespace a limited number of concurrent queries (16 by
default); every process of this service queries the same namespace, and adding
workers is how a deployment scales, so a per-process limit cannot hold it. each
request to the store takes a slot here first:

    plyr:{turbopuffer}:slots   a sorted set: one member per request in flight,
                               scored by when its lease ends
    plyr:{turbopuffer}:wanted  set for a second by a worker's request that found
                               no slot (speculative work stays off meanwhile)

a slot is taken by one server-side script (count the live members, add one: one
round trip, atomic), so two processes never both take the last; a process that
dies holding slots loses them when their leases end (`lease_seconds`, above the
store's own timeout). the
API's misses come first: background work (the workers) may hold at most
`limit - reserved` slots, so a person waiting on an inline compute never queues
behind a cold deploy's thousands of recomputes. a background request that finds
no slot within `background_wait_seconds` (1 s: a request holds one for tens of
milliseconds) raises `StoreBudgetExhausted`, a transient fault (docket retries the
task with backoff); an API request waits for one, at most `wait_seconds`. a
reconcile batch's shared requests, each carrying several runs' work, wait longer
(`patient`, PATIENT_WAIT_SECONDS). a background request looks again after 10 ms,
then 20, 40, up to 100 ms between looks; an API request every 10 ms.

one computation's requests follow one another (the id lookup, then the query,
then another query if too few candidates survive): inside `one_slot_per_run()`
they share one slot, taken by the first and given back when the block ends, so
a recompute costs one take and one give instead of one of each per request. the
slot is then held a little longer than the requests (the k-means between them,
the database's eligibility read after), never by two requests at once: the budget
only grows more conservative. a slot held past half its lease is given back and
taken afresh, so a long run never outlives its lease.

three kinds of work, by who waits for them:

- an API miss (a person waits): every slot, waiting up to `wait_seconds`;
- a worker's recompute (an edit waits to be precomputed): `limit - reserved`,
  waiting up to `background_wait_seconds`; a request that finds none marks the
  budget wanted for a second;
- speculative work (the API's guesses at the next version after "+": nobody waits):
  at most half the workers' share, never while a worker wanted a slot in the last
  second, and never waiting: refused at once (`SpeculationDeferred`), it is
  skipped. so a guess only ever takes a slot that no recompute was asking for, and
  leaves at least half the workers' share free as it does.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final

from engine.keys import STORE_SLOTS_KEY, STORE_WANTED_KEY
from engine.ports import TransientStoreError, VectorStore
from engine.types import Candidate, Vector
from worker.store.scripts import Script

WAIT_STEP_SECONDS: Final = 0.01
# a background request's waits grow from WAIT_STEP_SECONDS to this, doubling: each
# look is a script in Redis and a round trip, and nobody is waiting on the answer
MAX_BACKGROUND_STEP_SECONDS: Final = 0.1
# how long a reconcile batch's shared requests (its id lookup ahead of its runs, the
# searches of its gate) wait for a slot: each carries several runs' work, which a
# refusal hands off to tasks of their own to be done again (`python -m bench scale
# --workers 4`: at 1 s, 655 of 1,950 runs handed off on two busy cores; the batch
# holds one of its worker's task slots while it waits, so the worker takes no more)
PATIENT_WAIT_SECONDS: Final = 30.0

WANTED_MILLISECONDS: Final = 1000  # how long a worker's unmet request keeps guesses off

# KEYS[1] the slots, KEYS[2] the wanted mark; ARGV now, the ceiling, the holder, its
# lease's end, the key's TTL, the kind ("miss", "worker" or "guess"). counted before
# the dead leases are trimmed, as they are only trimmed by a taker
TAKE: Final = Script(
    f"""
    if ARGV[6] == 'guess' and redis.call('EXISTS', KEYS[2]) == 1 then
        return 0
    end
    if redis.call('ZCOUNT', KEYS[1], ARGV[1], '+inf') >= tonumber(ARGV[2]) then
        if ARGV[6] == 'worker' then
            redis.call('SET', KEYS[2], '1', 'PX', {WANTED_MILLISECONDS})
        end
        return 0
    end
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
    redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
    redis.call('EXPIRE', KEYS[1], ARGV[5])
    return 1
    """
)

# work an API process does that nobody waits for (speculative answers): it takes
# only slots no recompute is asking for (the module's doc)
_speculative: ContextVar[bool] = ContextVar("store_budget_speculative", default=False)


@contextmanager
def speculative_work() -> Iterator[None]:
    """store requests made in the block are guesses, whatever the store."""
    token = _speculative.set(True)
    try:
        yield
    finally:
        _speculative.reset(token)


class StoreBudgetExhausted(TransientStoreError):
    """every turbopuffer slot this work may use is taken: retried later."""


class SpeculationDeferred(StoreBudgetExhausted):
    """no slot a guess may take now (recomputes come first): the guess is skipped."""


@dataclass(slots=True)
class _Kept:
    """a slot kept for the rest of a run (`one_slot_per_run`)."""

    budget: SharedStoreBudget
    holder: str
    taken_at: float  # monotonic
    busy: bool = False


# how long a background request of the block waits for a slot, when longer than the
# budget's `background_wait_seconds` (None outside `patient`)
_patience: ContextVar[float | None] = ContextVar("store_budget_patience", default=None)


@contextmanager
def patient(seconds: float = PATIENT_WAIT_SECONDS) -> Iterator[None]:
    """a background request made in the block waits up to `seconds` for a slot: work
    that costs more to do again than to wait for (a batch's shared requests)."""
    token = _patience.set(seconds)
    try:
        yield
    finally:
        _patience.reset(token)


# the slots the current run keeps (None outside `one_slot_per_run`): one per budget
_run: ContextVar[list[_Kept] | None] = ContextVar("store_budget_run", default=None)


# the slots whose give-back waits for the cache write (None outside
# `give_back_with_the_write`): the runs' kept slots as they end
_deferred: ContextVar[list[_Kept] | None] = ContextVar("store_budget_deferred", default=None)


@asynccontextmanager
async def one_slot_per_run() -> AsyncIterator[None]:
    """the block's store requests share one slot (per budget), taken by the first and
    given back as the block ends (or by the cache write that follows, inside
    `give_back_with_the_write`); a request made while another of the block is in
    flight takes its own, as outside."""
    kept: list[_Kept] = []
    token = _run.set(kept)
    try:
        yield
    finally:
        _run.reset(token)
        deferred = _deferred.get()
        for slot in kept:
            if deferred is not None:
                deferred.append(slot)
            else:
                await slot.budget.give_back(slot.holder)


@asynccontextmanager
async def give_back_with_the_write() -> AsyncIterator[None]:
    """the slots the block's runs end with are given back by the block's cache write,
    in its own script (`RecommendationCache.put`, `deferred_slots`): a recompute's
    engine run ends right before its write, so the slot is held a moment longer and
    the give-back costs no round trip of its own. what no write took is given back
    as the block ends (a run that wrote nothing, a write that failed)."""
    pending: list[_Kept] = []
    token = _deferred.set(pending)
    try:
        yield
    finally:
        _deferred.reset(token)
        for slot in pending:
            await slot.budget.give_back(slot.holder)


def deferred_slots(redis: Any) -> list[str]:
    """the holders of the slots waiting for a write on `redis` (the budget's client
    must be the cache's: a budget elsewhere gives its slots back itself)."""
    pending = _deferred.get()
    return [slot.holder for slot in pending if slot.budget.redis is redis] if pending else []


def given_back(holders: Sequence[str]) -> None:
    """the write's script gave these back: nothing is left to give back at the end."""
    pending = _deferred.get()
    if pending and holders:
        gone = set(holders)
        pending[:] = [slot for slot in pending if slot.holder not in gone]


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
        self.deferred = 0  # guesses refused (speculative work, `SpeculationDeferred`)

    @asynccontextmanager
    async def slot(self, *, foreground: bool) -> AsyncIterator[None]:
        """hold one slot for the block (`foreground`: an API miss, which may use the
        reserved slots; else a worker's, which waits less and then fails, transient)."""
        run = _run.get()
        kept = next((slot for slot in run if slot.budget is self), None) if run else None
        if kept is not None and not kept.busy:
            if time.monotonic() - kept.taken_at < self.lease_seconds / 2:
                # the run's own slot, free: no round trip at all
                kept.busy = True
                try:
                    yield
                finally:
                    kept.busy = False
                return
            # held past half its lease: given back, and taken afresh below
            if run is not None:
                run.remove(kept)
            await self.give_back(kept.holder)
            kept = None
        holder = await self._acquire(foreground)
        if run is not None and kept is None:
            # the run's first request: its slot stays for the run's next ones
            kept = _Kept(self, holder, time.monotonic(), busy=True)
            run.append(kept)
            try:
                yield
            finally:
                kept.busy = False
            return
        try:
            yield
        finally:
            await self.give_back(holder)

    async def _acquire(self, foreground: bool) -> str:
        holder = uuid.uuid4().hex
        if _speculative.get():
            if not await self._take(holder, max(1, (self.limit - self.reserved) // 2), "guess"):
                self.deferred += 1
                raise SpeculationDeferred("turbopuffer's slots are wanted by recomputes")
            return holder
        kind = "miss" if foreground else "worker"
        ceiling = self.limit if foreground else self.limit - self.reserved
        if foreground:
            wait = self.wait_seconds
        else:
            wait = max(self.background_wait_seconds, _patience.get() or 0.0)
        deadline = time.monotonic() + wait
        step = WAIT_STEP_SECONDS
        while not await self._take(holder, ceiling, kind):
            now = time.monotonic()
            if now >= deadline:
                self.refused += 1
                raise StoreBudgetExhausted(
                    f"all {ceiling} turbopuffer slots this work may use are taken"
                )
            self.waits += 1
            await asyncio.sleep(min(step, deadline - now))
            if not foreground:  # a person waits on a miss: it keeps looking every step
                step = min(step * 2, MAX_BACKGROUND_STEP_SECONDS)
        return holder

    async def give_back(self, holder: str) -> None:
        await self.redis.zrem(STORE_SLOTS_KEY, holder)

    async def _take(self, holder: str, ceiling: int, kind: str = "worker") -> bool:
        """take a slot if fewer than `ceiling` are held (and, for a guess, no worker
        wanted one lately); whether it was taken."""
        now = self._clock()
        ttl = max(1, round(self.lease_seconds))
        return bool(
            await TAKE(
                self.redis,
                [STORE_SLOTS_KEY, STORE_WANTED_KEY],
                [now, ceiling, holder, now + self.lease_seconds, ttl, kind],
            )
        )

    async def in_use(self) -> int:
        return int(await self.redis.zcount(STORE_SLOTS_KEY, self._clock(), "+inf"))


@asynccontextmanager
async def patient_slot(budget: SharedStoreBudget) -> AsyncIterator[None]:
    """one background slot of `budget`, waited for `patient`ly: a batch's gate holds
    it while its shared searches are in flight (`engine.query_gate`)."""
    with patient():
        async with budget.slot(foreground=False):
            yield


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
