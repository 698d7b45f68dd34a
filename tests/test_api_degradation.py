"""the API degrades, never 500s: each dependency taken away or made to fail for real
(turbopuffer answering 500s, redis-server stopped, the PDS stopped or misbehaving,
PostgreSQL's database dropped), and the cache reads that batch hits together.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from bench.loopback.catalog_rows import load_into_postgres
from bench.loopback.servers import PostgresServer, RedisServer, free_port
from bench.loopback.turbopuffer import TurbopufferServer
from engine.cache import CachedRecommendations, cache_key
from engine.exact_store import ExactStore
from engine.memory_catalog import InMemoryCatalog
from engine.postgres_catalog import PostgresCatalog
from engine.turbopuffer_store import TurbopufferStore
from tests.support.api_world import (
    BOBS_ID,
    CID_1,
    CID_2,
    EMPTY_ID,
    NAMESPACE,
    PUBLIC_ID,
    SAMPLE,
    URI_OF,
    Api,
    World,
    bearer,
    built_world,
    cached_value,
    internal,
    running_api,
    sample_tracks,
)
from tests.support.pds_server import list_record
from tests.support.samples import track_vector
from tests.support.world import sample_store
from worker.api.answers import AnswerLimits
from worker.api.app import SOURCE_HEADER
from worker.store.cache import RecommendationCache
from worker.store.reads import CoalescedReads


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with built_world() as built:
        yield built


@pytest.fixture
def exact_store() -> ExactStore:
    return sample_store()


@pytest.fixture
async def api(
    world: World, redis_client: aioredis.Redis, exact_store: ExactStore
) -> AsyncIterator[Api]:
    async with running_api(world, redis_client, store=exact_store) as running:
        yield running


async def test_cache_reads_of_one_moment_leave_as_one_mget(redis_client: aioredis.Redis) -> None:
    cache = RecommendationCache(redis_client)
    reads = CoalescedReads(cache, timeout_seconds=1.0)
    cached = CachedRecommendations(sample_tracks(2), True)
    await redis_client.set(cache_key(PUBLIC_ID, CID_1), cached.to_json(), ex=60)
    await redis_client.set(cache_key(EMPTY_ID, CID_1), b"{not json", ex=60)
    found = await asyncio.gather(
        *(
            reads.get(playlist_id, CID_1)
            for playlist_id in (PUBLIC_ID, PUBLIC_ID, EMPTY_ID, BOBS_ID)
        )
    )
    assert found == [cached, cached, None, None]
    assert reads.batches == 1
    assert cache.counts["corrupt_entries"] == 1  # read like RecommendationCache.get reads
    await reads.aclose()


async def test_a_cache_read_fault_reaches_every_waiter() -> None:
    unreachable = aioredis.Redis(port=free_port(), socket_connect_timeout=1.0)
    reads = CoalescedReads(RecommendationCache(unreachable), timeout_seconds=0.2)
    outcomes = await asyncio.gather(
        *(reads.get(PUBLIC_ID, token) for token in (CID_1, CID_2)), return_exceptions=True
    )
    # refused (redis-py retries that for a while) or past the bound: a cache fault either way
    assert [type(outcome) for outcome in outcomes] in (
        [RedisConnectionError] * 2,
        [TimeoutError] * 2,
    )
    assert reads.batches == 1
    await reads.aclose()
    await unreachable.aclose()


# --- degradations ---------------------------------------------------------------------


async def test_an_empty_playlist_is_unavailable_without_a_vector_query(
    api: Api, world: World, exact_store: ExactStore
) -> None:
    response = await api.get(EMPTY_ID, internal(world.alice.did))
    assert response.json() == {"tracks": [], "available": False}
    assert exact_store.requests == 0


async def test_no_vector_store_is_unavailable_and_not_cached(
    world: World, redis_client: aioredis.Redis
) -> None:
    async with running_api(world, redis_client, store=None) as api:
        response = await api.get(PUBLIC_ID, internal(world.alice.did))
        assert response.json() == {"tracks": [], "available": False}
        assert response.headers[SOURCE_HEADER] == "store_disabled"
        assert await redis_client.exists(cache_key(PUBLIC_ID, CID_1)) == 0
        # a hit the worker left is still served: the API reads before it computes
        cached = CachedRecommendations(sample_tracks(4), True)
        await redis_client.set(cache_key(PUBLIC_ID, CID_1), cached.to_json(), ex=60)
        assert (await api.get(PUBLIC_ID, internal(world.alice.did))).json() == cached.response(3)


async def test_a_failing_turbopuffer_is_unavailable_then_recovers(
    world: World, redis_client: aioredis.Redis
) -> None:
    async with TurbopufferServer() as server:
        server.seed(NAMESPACE, {t["id"]: track_vector(t["id"]) for t in SAMPLE["tracks"]})
        store = TurbopufferStore(
            api_key="test",
            namespace=NAMESPACE,
            base_url=server.base_url,
            timeout=2.0,
            max_retries=0,
        )
        async with running_api(world, redis_client, store=store) as api:
            server.fail_next(500, times=50)
            failed = await api.get(PUBLIC_ID, internal(world.alice.did))
            assert failed.status_code == 200
            assert failed.json() == {"tracks": [], "available": False}
            assert failed.headers[SOURCE_HEADER] == "store_failed"
            assert await redis_client.exists(cache_key(PUBLIC_ID, CID_1)) == 0

            server.reset()
            recovered = await api.get(PUBLIC_ID, internal(world.alice.did))
            assert recovered.json()["available"] is True
            assert server.requests_of("multi_query")
        await store.aclose()


async def test_redis_down_computes_fresh_every_time(
    world: World, redis_server: RedisServer, redis_client: aioredis.Redis, exact_store: ExactStore
) -> None:
    async with running_api(world, redis_client, store=exact_store) as api:
        headers = internal(world.alice.did)
        warm = await api.get(PUBLIC_ID, headers)
        assert warm.headers[SOURCE_HEADER] == "computed"
        redis_server.stop()
        try:
            for _ in range(2):
                response = await api.get(PUBLIC_ID, headers)
                assert response.status_code == 200
                assert response.headers[SOURCE_HEADER] == "computed_uncached"
                assert response.json() == warm.json()
            health = (await api.client.get("/health")).json()
            assert health["degraded"] is True
            assert health["redis"] == "down"
            # the cache cannot say the worker's state: the PDS gave the tracks each time
            assert len(world.pds.requests) == 3
        finally:
            redis_server.start()


@pytest.mark.parametrize(
    "fault", ["stopped", "stall", "error", "garbage", "oversized", "not_found"]
)
async def test_an_unreachable_pds_is_unavailable_and_not_cached(
    api: Api, world: World, fault: str
) -> None:
    if fault == "stopped":
        await world.pds.stop()
    elif fault == "not_found":
        world.pds.records.clear()
    else:
        world.pds.fault = fault  # type: ignore[assignment]
    response = await api.get(PUBLIC_ID, internal(world.alice.did))
    assert response.status_code == 200
    assert response.json() == {"tracks": [], "available": False}
    assert response.headers[SOURCE_HEADER] in ("pds_unreachable", "record_rejected")
    assert await api.redis.exists(cache_key(PUBLIC_ID, CID_1)) == 0


async def test_an_invalid_record_on_the_pds_is_refused(api: Api, world: World) -> None:
    bad = list_record([URI_OF[1], "at://did:plc:notavalidone/fm.plyr.track/x"])
    world.pds.put(world.record_uri("3mpublic22222"), CID_1, bad)
    response = await api.get(PUBLIC_ID, internal(world.alice.did))
    assert response.json() == {"tracks": [], "available": False}
    assert response.headers[SOURCE_HEADER] == "record_rejected"


async def test_a_slow_compute_answers_unavailable_and_still_fills_the_cache(
    world: World, redis_client: aioredis.Redis, exact_store: ExactStore
) -> None:
    limits = AnswerLimits(cache_retry_seconds=0.0, miss_timeout_seconds=0.05)
    async with running_api(world, redis_client, store=exact_store, limits=limits) as api:
        world.pds.delay = 0.2  # slower than the request's budget, within the PDS bound
        response = await api.get(PUBLIC_ID, internal(world.alice.did))
        assert response.headers[SOURCE_HEADER] == "timeout"
        assert response.json() == {"tracks": [], "available": False}
        # the compute carried on without the request and left the answer for the next one
        await api.app.state.api.answers.drain()
        assert await redis_client.exists(cache_key(PUBLIC_ID, CID_1)) == 1
        again = await api.get(PUBLIC_ID, internal(world.alice.did))
        assert again.headers[SOURCE_HEADER] == "hit"
        assert len(world.pds.requests) == 1


async def test_an_owner_without_a_known_pds_is_unavailable(
    world: World, redis_client: aioredis.Redis, exact_store: ExactStore
) -> None:
    catalog_json = world.catalog_json()
    for artist in catalog_json["artists"]:
        artist.pop("pds_url", None)
    catalog = InMemoryCatalog.from_json(catalog_json)
    async with running_api(world, redis_client, store=exact_store, catalog=catalog) as api:
        response = await api.get(PUBLIC_ID, internal(world.alice.did))
        assert response.headers[SOURCE_HEADER] == "no_pds"
        assert response.json() == {"tracks": [], "available": False}
        assert world.pds.requests == []


async def test_past_the_compute_limit_a_miss_is_shed_not_queued(
    world: World, redis_client: aioredis.Redis, exact_store: ExactStore
) -> None:
    limits = AnswerLimits(cache_retry_seconds=0.0, max_concurrent_computes=1)
    async with running_api(world, redis_client, store=exact_store, limits=limits) as api:
        world.pds.delay = 0.2  # the first compute holds the only slot meanwhile
        headers = internal(world.alice.did)
        responses = await asyncio.gather(api.get(PUBLIC_ID, headers), api.get(EMPTY_ID, headers))
        assert sorted(response.headers[SOURCE_HEADER] for response in responses) == [
            "busy",
            "computed" if responses[0].headers[SOURCE_HEADER] == "computed" else "unavailable",
        ]
        shed = next(r for r in responses if r.headers[SOURCE_HEADER] == "busy")
        assert shed.json() == {"tracks": [], "available": False}


async def test_an_unreadable_cache_entry_is_a_miss(api: Api, world: World) -> None:
    await api.redis.set(cache_key(PUBLIC_ID, CID_1), b"\x00 not the contract")
    response = await api.get(PUBLIC_ID, internal(world.alice.did))
    assert response.headers[SOURCE_HEADER] == "computed"
    assert response.json()["available"] is True
    repaired = await cached_value(api.redis, PUBLIC_ID, CID_1)  # the bad entry was replaced
    assert repaired is not None
    assert response.json() == repaired.response(3)
    text = (await api.client.get("/metrics")).text
    assert 'plyr_recs_api_cache_faults_total{kind="corrupt_entries"}' in text  # each read counts


# --- plyr.fm's PostgreSQL ----------------------------------------------------------------


async def test_on_postgres_the_owners_pds_comes_from_artists_and_a_lost_database_degrades(
    world: World,
    redis_client: aioredis.Redis,
    exact_store: ExactStore,
    postgres_server: PostgresServer,
    postgres_dsn: str,
) -> None:
    await load_into_postgres(postgres_dsn, world.catalog_json())
    catalog = await PostgresCatalog.connect(postgres_dsn, timeout=2.0)
    try:
        row = await catalog.get_playlist(PUBLIC_ID)
        assert row is not None
        assert row.owner_pds_url == world.pds.url
        async with running_api(world, redis_client, store=exact_store, catalog=catalog) as api:
            response = await api.get(PUBLIC_ID, bearer(world.alice))
            assert response.headers[SOURCE_HEADER] == "computed"
            assert response.json()["available"] is True
            assert len(world.pds.requests) == 1
            state = await RecommendationCache(api.redis).get_state(PUBLIC_ID)
            assert state is not None
            assert state.owner_did == world.alice.did  # what the outage will be judged by

            name = postgres_dsn.rsplit("/", 1)[1]
            admin = await asyncpg.connect(postgres_server.dsn())
            try:
                await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            finally:
                await admin.close()
            # the owner: the newest answer the cache holds, from the worker's state
            lost = await api.get(PUBLIC_ID, bearer(world.alice), limit=5)
            assert lost.status_code == 200
            assert lost.headers[SOURCE_HEADER] == "last_known"
            kept = await cached_value(api.redis, PUBLIC_ID, CID_1)
            assert kept is not None
            assert lost.json() == kept.response(5)
            # not the owner, by the state's word: refused, as with the database
            assert (await api.get(PUBLIC_ID, bearer(world.bob))).status_code == 403
            # never computed: nobody can be told whose it is, so nothing but "unavailable"
            for viewer in (world.alice, world.bob):
                unknown = await api.get(BOBS_ID, bearer(viewer))
                assert unknown.status_code == 200
                assert unknown.json() == {"tracks": [], "available": False}
                assert unknown.headers[SOURCE_HEADER] == "catalog_failed"
            assert (await api.client.get("/health")).json()["catalog"] == "down"
            metrics = (await api.client.get("/metrics")).text
            assert "plyr_recs_api_catalog_faults_total 4.0" in metrics
            assert 'plyr_recs_api_answers_total{source="last_known"} 1.0' in metrics
    finally:
        await catalog.aclose()
