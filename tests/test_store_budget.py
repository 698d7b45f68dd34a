"""turbopuffer's concurrency budget, enforced across processes through a real redis-server,
with the API's misses ahead of the workers' background work."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from bench.loopback.servers import RedisServer
from bench.loopback.turbopuffer import TurbopufferServer
from engine.errors import TransientError
from engine.memory_catalog import InMemoryCatalog
from engine.query_gate import GatedStore
from engine.types import Candidate, Vector
from engine.vector_cache import VectorCache
from tests.support.samples import load_catalog, track_vector
from tests.support.world import sample_store
from worker.recs.services import open_services
from worker.settings import Settings
from worker.store.store_budget import (
    BudgetedStore,
    SharedStoreBudget,
    SpeculationDeferred,
    StoreBudgetExhausted,
    patient,
    patient_slot,
    speculative_work,
)

pytestmark = pytest.mark.integration


class HeldStore:
    """the sample store, each request held until `gate` opens; counts requests at once."""

    def __init__(self) -> None:
        self.inner = sample_store()
        self.gate = asyncio.Event()
        self.running = 0
        self.most = 0
        self.changed = asyncio.Condition()

    async def _held(self) -> None:
        async with self.changed:
            self.running += 1
            self.most = max(self.most, self.running)
            self.changed.notify_all()
        try:
            await self.gate.wait()
        finally:
            self.running -= 1

    async def reached(self, count: int) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: self.running >= count), 10)

    async def get_vectors(self, track_ids: Sequence[int]) -> dict[int, Vector]:
        await self._held()
        return await self.inner.get_vectors(track_ids)

    async def query_many(
        self, vectors: Sequence[Vector], *, top_k: int, exclude_ids: Iterable[int]
    ) -> list[list[Candidate]]:
        await self._held()
        return await self.inner.query_many(vectors, top_k=top_k, exclude_ids=exclude_ids)


def budget(redis: aioredis.Redis) -> SharedStoreBudget:
    return SharedStoreBudget(
        redis, limit=3, reserved=1, lease_seconds=30, wait_seconds=5, background_wait_seconds=0.2
    )


async def test_the_budget_holds_across_processes_and_keeps_slots_for_the_api(
    redis_client: aioredis.Redis, redis_server: RedisServer
) -> None:
    # two "worker processes" and an "API process": three clients, one Redis
    url = redis_server.url
    clients = [aioredis.Redis.from_url(url) for _ in range(3)]
    try:
        inner = HeldStore()
        worker_a = BudgetedStore(inner, budget(clients[0]), foreground=False)
        worker_b = BudgetedStore(inner, budget(clients[1]), foreground=False)
        api = BudgetedStore(inner, budget(clients[2]), foreground=True)
        first = asyncio.create_task(worker_a.get_vectors([1]))
        second = asyncio.create_task(worker_b.get_vectors([2]))
        await inner.reached(2)
        # the workers' share (3 - 1 reserved) is taken: a third background request
        # waits a little, then is refused as a transient fault (docket retries its task)
        with pytest.raises(StoreBudgetExhausted) as refused:
            await worker_a.get_vectors([3])
        assert isinstance(refused.value, TransientError)
        # the API's miss takes the reserved slot at once...
        miss = asyncio.create_task(api.get_vectors([4]))
        await inner.reached(3)
        assert await budget(clients[0]).in_use() == 3
        # ...and a second miss waits for a slot instead of failing
        waiting = asyncio.create_task(api.get_vectors([5]))
        await asyncio.sleep(0.2)
        assert inner.running == 3
        assert not waiting.done()
        inner.gate.set()
        await asyncio.gather(first, second, miss, waiting)
        assert inner.most == 3  # never more than the deployment's limit
        assert await budget(clients[0]).in_use() == 0
    finally:
        for client in clients:
            await client.aclose()


async def test_guesses_take_only_slots_no_recompute_asks_for(
    redis_client: aioredis.Redis, redis_server: RedisServer
) -> None:
    """speculative answers are computed in the API process, but nobody waits for them:
    they never take the slots kept for misses, at most half the workers' share, none
    while a worker went without one lately, and they never wait in line."""
    wide = SharedStoreBudget(
        redis_client,
        limit=6,
        reserved=2,
        lease_seconds=30,
        wait_seconds=5,
        background_wait_seconds=0.2,
    )
    other = aioredis.Redis.from_url(redis_server.url)  # a worker process
    try:
        inner = HeldStore()
        api = BudgetedStore(inner, wide, foreground=True)
        worker = BudgetedStore(
            inner,
            SharedStoreBudget(
                other,
                limit=6,
                reserved=2,
                lease_seconds=30,
                wait_seconds=5,
                background_wait_seconds=0.2,
            ),
            foreground=False,
        )
        # guesses alone: half the workers' share (4 // 2), then refused at once
        with speculative_work():
            guesses = [asyncio.create_task(api.get_vectors([n])) for n in (1, 2)]
            await inner.reached(2)
            started = asyncio.get_running_loop().time()
            with pytest.raises(SpeculationDeferred):
                await api.get_vectors([3])
            assert asyncio.get_running_loop().time() - started < 0.1  # no waiting in line
        # the workers still have the rest of their share, and the misses theirs
        held = [asyncio.create_task(worker.get_vectors([n])) for n in (4, 5)]
        await inner.reached(4)
        miss = asyncio.create_task(api.get_vectors([6]))
        await inner.reached(5)
        # a worker that finds no slot marks the budget wanted...
        with pytest.raises(StoreBudgetExhausted):
            await worker.get_vectors([7])
        inner.gate.set()
        await asyncio.gather(*guesses, *held, miss)
        assert await wide.in_use() == 0
        # ...and for a while after, even with every slot free, no guess takes one
        inner.gate.clear()
        with speculative_work(), pytest.raises(SpeculationDeferred):
            await api.get_vectors([8])
        assert wide.deferred == 2
        await asyncio.sleep(1.1)  # the mark lapses: a guess may take a free slot again
        inner.gate.set()
        with speculative_work():
            await api.get_vectors([9])
    finally:
        await other.aclose()


async def test_a_patient_request_waits_for_a_slot_with_ever_longer_looks(
    redis_client: aioredis.Redis,
) -> None:
    shared = SharedStoreBudget(
        redis_client,
        limit=2,
        reserved=1,  # the workers' share: one slot
        lease_seconds=30,
        wait_seconds=5,
        background_wait_seconds=0.05,
    )
    async with shared.slot(foreground=False):
        # the share is taken: an impatient background request is refused in its 50 ms
        with pytest.raises(StoreBudgetExhausted):
            async with shared.slot(foreground=False):
                pass
        looks_before = shared.waits

        async def patient_one() -> float:
            started = time.monotonic()
            async with patient_slot(shared):
                assert await shared.in_use() == 1
                return time.monotonic() - started

        waiting = asyncio.ensure_future(patient_one())
        await asyncio.sleep(0.6)
        assert not waiting.done()  # past its 50 ms: it waits on
    waited = await waiting  # the slot given back: taken by the patient request
    assert 0.6 <= waited < 5
    # looks 10, 20, 40, 80 ms apart, then every 100 ms: about 9 in 0.6 s, not 60
    assert shared.waits - looks_before <= 12
    assert await shared.in_use() == 0
    with patient(0.2):  # a patience shorter than the budget's own changes nothing
        async with shared.slot(foreground=False):
            assert await shared.in_use() == 1


async def test_a_dead_holders_slot_ends_with_its_lease(redis_client: aioredis.Redis) -> None:
    short = SharedStoreBudget(
        redis_client,
        limit=1,
        reserved=0,
        lease_seconds=0.3,
        wait_seconds=0,
        background_wait_seconds=0,
    )
    await short._take("a process that died holding it", ceiling=1)
    with pytest.raises(StoreBudgetExhausted):
        async with short.slot(foreground=False):
            pass
    await asyncio.sleep(0.4)
    async with short.slot(foreground=False):
        assert await short.in_use() == 1


async def test_the_services_of_a_deployment_query_turbopuffer_through_the_budget(
    redis_client: aioredis.Redis,
) -> None:
    async with TurbopufferServer() as server:
        server.seed("plyr-tracks", {track: track_vector(track) for track in range(1, 10)})
        settings = Settings(
            _env_file=None,
            turbopuffer_api_key=SecretStr("test"),
            turbopuffer_base_url=server.base_url,
            turbopuffer_max_concurrent_queries=2,
            turbopuffer_api_reserved_queries=1,
        )
        async with open_services(
            settings, redis=redis_client, catalog=InMemoryCatalog.from_json(load_catalog())
        ) as api:
            assert isinstance(api.store, VectorCache)  # in front: its hits cost no slot
            gated = api.store.store  # a worker's: a batch's searches wait at its gate
            assert isinstance(gated, GatedStore)
            store = gated.store
            assert isinstance(store, BudgetedStore)
            assert not store.foreground  # a worker's unless opened for the API
            vectors = await store.get_vectors([1, 2, 3])
            assert sorted(vectors) == [1, 2, 3]
            assert await store.budget.in_use() == 0
