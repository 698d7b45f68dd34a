"""the in-process vector cache in front of the real turbopuffer adapter (the real
client against the loopback turbopuffer server): what it asks of turbopuffer,
what it answers itself, how long, and that answers stay the same through it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from bench.loopback.turbopuffer import TurbopufferServer
from engine.exact_store import ExactStore
from engine.memory_catalog import InMemoryCatalog
from engine.ports import TransientStoreError
from engine.query_gate import GatedStore
from engine.recommend import recommend
from engine.types import Strategy
from engine.vector_cache import VectorCache
from tests.support.samples import load_catalog, track_vector
from tests.support.turbopuffer_world import NAMESPACE, make_store, server
from worker.recs.services import open_services
from worker.settings import Settings
from worker.store.store_budget import BudgetedStore, StoreBudgetExhausted
from worker.wiring import store_from_settings, with_vector_cache

pytestmark = pytest.mark.integration

__all__ = ["server"]  # fixture


class Clock:
    """a clock the test moves by hand (the cache's TTL is the thing under test)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def cache(server: TurbopufferServer, clock: Clock) -> AsyncIterator[VectorCache]:
    cached = VectorCache(make_store(server), max_vectors=4, ttl_seconds=600.0, clock=clock)
    yield cached
    await cached.aclose()


def lookups(server: TurbopufferServer) -> list[list[int]]:
    """the ids of each id lookup the server was asked, in order."""
    return [request.body["filters"][2] for request in server.requests_of("query")]


async def test_tracks_seen_lately_are_not_asked_for_again(
    server: TurbopufferServer, cache: VectorCache
) -> None:
    first = await cache.get_vectors([1, 2])
    second = await cache.get_vectors([2, 3, 1])

    assert sorted(second) == [1, 2, 3]
    for track_id, vector in second.items():
        np.testing.assert_array_equal(vector, track_vector(track_id))
    assert second[1] is first[1]  # the very array, not a fresh copy
    assert lookups(server) == [[1, 2], [3]]
    assert (cache.stats.hits, cache.stats.misses) == (2, 3)

    assert sorted(await cache.get_vectors([3, 2])) == [2, 3]
    assert len(server.requests) == 2  # all of them from memory


async def test_a_reupload_is_served_once_the_entry_expires(
    server: TurbopufferServer, cache: VectorCache, clock: Clock
) -> None:
    await cache.get_vectors([7])
    reuploaded = track_vector(8)
    server.seed(NAMESPACE, {7: reuploaded})  # new audio, new embedding, same track id

    clock.now += 599.0
    np.testing.assert_array_equal((await cache.get_vectors([7]))[7], track_vector(7))
    clock.now += 1.0
    np.testing.assert_array_equal((await cache.get_vectors([7]))[7], reuploaded)

    assert lookups(server) == [[7], [7]]
    assert cache.stats.expired == 1


async def test_reading_an_entry_does_not_extend_its_life(
    server: TurbopufferServer, cache: VectorCache, clock: Clock
) -> None:
    await cache.get_vectors([7])
    for _ in range(5):
        clock.now += 150.0  # read every 150 s: 750 s after it was fetched in all
        await cache.get_vectors([7])

    assert lookups(server) == [[7], [7]]


async def test_the_least_recently_used_go_first_past_the_bound(
    server: TurbopufferServer, cache: VectorCache
) -> None:
    await cache.get_vectors([1, 2, 3, 4])  # full (max_vectors=4)
    await cache.get_vectors([1])  # 1 is now the most recently used
    await cache.get_vectors([5, 6])  # 2 and 3 make room

    assert len(cache) == 4
    assert cache.stats.evicted == 2
    server.reset()
    await cache.get_vectors([1, 4, 5, 6])
    assert server.requests == []
    await cache.get_vectors([2, 3])
    assert lookups(server) == [[2, 3]]


async def test_tracks_without_an_embedding_are_asked_for_each_time(
    server: TurbopufferServer, cache: VectorCache
) -> None:
    server.seed(NAMESPACE, {5000: None})  # ingest has not embedded it yet

    assert await cache.get_vectors([5000]) == {}
    server.seed(NAMESPACE, {5000: track_vector(5000)})
    found = await cache.get_vectors([5000])

    np.testing.assert_array_equal(found[5000], track_vector(5000))
    assert lookups(server) == [[5000], [5000]]


async def test_a_failed_lookup_caches_nothing(
    server: TurbopufferServer, cache: VectorCache
) -> None:
    server.fail_next(503)

    with pytest.raises(TransientStoreError):
        await cache.get_vectors([1, 2])
    assert len(cache) == 0
    assert sorted(await cache.get_vectors([1, 2])) == [1, 2]


async def test_cached_vectors_cannot_be_changed_by_a_caller(server: TurbopufferServer) -> None:
    # the exact store hands out writable copies: the cache keeps its own, frozen
    exact = ExactStore([1, 2], np.stack([track_vector(1), track_vector(2)]))
    stored = (await exact.get_vectors([1]))[1]
    cache = VectorCache(exact)
    vector = (await cache.get_vectors([1]))[1]

    with pytest.raises(ValueError, match="read-only"):
        vector[0] = 2.0
    np.testing.assert_array_equal((await cache.get_vectors([1]))[1], stored)


async def test_ids_are_checked_as_the_store_checks_them(
    server: TurbopufferServer, cache: VectorCache
) -> None:
    await cache.get_vectors([1])
    with pytest.raises(TypeError, match="integers"):
        await cache.get_vectors([True])  # True == 1, yet no track id
    found = await cache.get_vectors(list(np.array([1, 2], dtype=np.int64)))

    assert sorted(found) == [1, 2]
    assert all(type(track_id) is int for track_id in found)
    assert lookups(server) == [[1], [2]]


async def test_neighbour_searches_always_go_to_turbopuffer(
    server: TurbopufferServer, cache: VectorCache
) -> None:
    for _ in range(2):
        [candidates] = await cache.query_many([track_vector(9)], top_k=3, exclude_ids=[9])
        assert len(candidates) == 3

    assert len(server.requests_of("multi_query")) == 2


async def test_recommendations_through_the_cache_are_the_same_and_cost_one_request(
    server: TurbopufferServer, clock: Clock
) -> None:
    playlist = list(range(300, 0, -2))  # 150 tracks: a sample, k-means, strays, proportions
    async with make_store(server) as store:
        direct = await recommend(playlist, store)
        cache = VectorCache(store, clock=clock)
        await cache.get_vectors(playlist[::3])  # some cached: the answer's order is mixed
        first = await recommend(playlist, cache)
        server.reset()
        second = await recommend(playlist, cache)

    assert direct.strategy is Strategy.KMEANS
    assert first == direct
    assert second == direct
    assert [request.kind for request in server.requests] == ["multi_query"]


async def test_the_services_put_the_cache_in_front_of_the_shared_budget(
    server: TurbopufferServer, redis_client: aioredis.Redis
) -> None:
    settings = Settings(
        _env_file=None,
        turbopuffer_api_key=SecretStr("k"),
        turbopuffer_base_url=server.base_url,
        turbopuffer_namespace=NAMESPACE,
        turbopuffer_max_concurrent_queries=2,
        turbopuffer_api_reserved_queries=1,
        vector_cache_ttl_seconds=60.0,
    )
    catalog = InMemoryCatalog.from_json(load_catalog())
    async with open_services(settings, redis=redis_client, catalog=catalog) as worker:
        cache = worker.store
        assert isinstance(cache, VectorCache)
        assert (cache.max_vectors, cache.ttl_seconds) == (20_000, 60.0)
        gated = cache.store  # a worker's: a batch's searches wait at its gate
        assert isinstance(gated, GatedStore)
        budgeted = gated.store
        assert isinstance(budgeted, BudgetedStore)
        await cache.get_vectors([1, 2, 3])
        # every slot taken (by the API, say): a lookup the cache answers waits for none
        async with budgeted.budget.slot(foreground=True), budgeted.budget.slot(foreground=True):
            assert sorted(await cache.get_vectors([3, 1])) == [1, 3]
            with pytest.raises(StoreBudgetExhausted):
                await cache.get_vectors([4])
    assert lookups(server) == [[1, 2, 3]]


def test_a_cache_size_of_zero_turns_the_cache_off() -> None:
    settings = Settings(
        _env_file=None,
        turbopuffer_api_key=SecretStr("k"),
        turbopuffer_base_url="http://127.0.0.1:9",
        vector_cache_size=0,
    )
    store = store_from_settings(settings)
    assert store is not None

    assert with_vector_cache(settings, store) is store


def test_bounds_are_checked() -> None:
    exact = ExactStore([1], np.stack([track_vector(1)]))
    with pytest.raises(ValueError, match="max_vectors"):
        VectorCache(exact, max_vectors=0)
    with pytest.raises(ValueError, match="ttl_seconds"):
        VectorCache(exact, ttl_seconds=0.0)
