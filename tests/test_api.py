"""the HTTP API through an HTTP client, on real parts.

a real redis-server (the session one, flushed), the sample catalogue in an
InMemoryCatalog (and once in PostgreSQL), an ExactStore of the samples' test
vectors (and the real turbopuffer client against the local turbopuffer
server for its faults), a local PLC directory with keys made in the test, and
a local PDS serving the list records. the app runs its lifespan; requests go
through httpx's ASGI transport, so nothing listens and nothing leaves the host.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr
from redis.exceptions import ConnectionError as RedisConnectionError

from engine.cache import CachedRecommendations, PlaylistState, cache_key, fingerprint, state_key
from engine.exact_store import ExactStore
from engine.memory_catalog import InMemoryCatalog
from engine.ports import Catalog, VectorStore
from engine.postgres_catalog import PostgresCatalog
from engine.turbopuffer_store import TurbopufferStore
from engine.types import Track
from jetstream.records import RecordLimits
from tests.support.catalog_data import load_into_postgres
from tests.support.did_server import Identity, PlcDirectory
from tests.support.pds_server import PdsServer, list_record
from tests.support.samples import load_catalog, track_vector
from tests.support.turbopuffer_server import TurbopufferServer
from worker.api import SOURCE_HEADER, create_app
from worker.api_answers import AnswerLimits
from worker.auth import Authenticator
from worker.cache_reads import CoalescedReads
from worker.cache_store import RecommendationCache
from worker.local_servers import PostgresServer, RedisServer, free_port
from worker.pds import PdsRecords
from worker.services import open_services
from worker.settings import Settings

SERVICE_DID = "did:web:recs.plyr.test"
INTERNAL_TOKEN = "internal-test-token"
ROUTE = "/playlists/{}/recommendations"
NAMESPACE = "plyr-tracks"

CID_1 = "bafyreia" + "a" * 51
CID_2 = "bafyreib" + "b" * 51
PUBLIC_ID = "11111111-1111-4111-8111-111111111111"
PRIVATE_ID = "22222222-2222-4222-8222-222222222222"
EMPTY_ID = "33333333-3333-4333-8333-333333333333"
BOBS_ID = "44444444-4444-4444-8444-444444444444"
PRIVATE_UPDATED_AT = datetime(2026, 2, 3, 4, 5, 6, 789000, tzinfo=UTC)

SAMPLE = load_catalog()
URI_OF = {track["id"]: track["atproto_record_uri"] for track in SAMPLE["tracks"]}
PDS_TRACKS = [1, 2, 5, 6, 9, 13]  # what the owner's PDS holds for the public playlist
STATE_TRACKS = [3, 7, 11]  # what a worker's state says (a test makes them disagree)
PRIVATE_TRACKS = [4, 8]


@dataclass
class World:
    """two accounts, their playlists, and the PDS and PLC directory that serve them."""

    alice: Identity
    bob: Identity
    pds: PdsServer
    plc: PlcDirectory

    def record_uri(self, rkey: str) -> str:
        return f"at://{self.alice.did}/fm.plyr.list/{rkey}"

    def catalog_json(self) -> dict[str, Any]:
        accounts = [
            {
                "did": who.did,
                "handle": f"{name}.test",
                "display_name": name,
                "pds_url": self.pds.url,
            }
            for name, who in (("alice", self.alice), ("bob", self.bob))
        ]
        playlists = [
            self._playlist(PUBLIC_ID, self.alice, self.record_uri("3mpublic22222"), CID_1),
            self._playlist(EMPTY_ID, self.alice, self.record_uri("3mempty222222"), CID_1),
            self._playlist(
                BOBS_ID, self.bob, f"at://{self.bob.did}/fm.plyr.list/3mbob2222222", CID_1
            ),
            {
                "id": PRIVATE_ID,
                "owner_did": self.alice.did,
                "name": "private",
                "is_private": True,
                "items_json": [{"uri": URI_OF[t], "cid": "bafyreitrack"} for t in PRIVATE_TRACKS],
                "updated_at": PRIVATE_UPDATED_AT.isoformat(),
            },
        ]
        return {
            "artists": [*SAMPLE["artists"], *accounts],
            "tracks": SAMPLE["tracks"],
            "playlists": playlists,
        }

    @staticmethod
    def _playlist(playlist_id: str, owner: Identity, uri: str, cid: str) -> dict[str, Any]:
        return {
            "id": playlist_id,
            "owner_did": owner.did,
            "name": playlist_id[:4],
            "atproto_record_uri": uri,
            "atproto_record_cid": cid,
        }


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with PlcDirectory() as plc, PdsServer() as pds:
        alice = plc.publish(Identity.generate("k256"))
        bob = plc.publish(Identity.generate("p256"))
        built = World(alice, bob, pds, plc)
        pds.put(
            built.record_uri("3mpublic22222"), CID_1, list_record([URI_OF[t] for t in PDS_TRACKS])
        )
        pds.put(built.record_uri("3mempty222222"), CID_1, list_record([]))
        yield built


@pytest.fixture
def exact_store() -> ExactStore:
    return ExactStore.from_vectors({t["id"]: track_vector(t["id"]) for t in SAMPLE["tracks"]})


@dataclass
class Api:
    client: httpx.AsyncClient
    app: Any
    redis: Any

    async def get(self, playlist_id: str, headers: dict[str, str], **params: Any) -> httpx.Response:
        return await self.client.get(ROUTE.format(playlist_id), headers=headers, params=params)


@asynccontextmanager
async def running_api(
    world: World,
    redis: Any,
    *,
    store: VectorStore | None,
    catalog: Catalog | None = None,
    limits: AnswerLimits | None = None,
) -> AsyncIterator[Api]:
    settings = Settings(
        _env_file=None,
        service_did=SERVICE_DID,
        internal_api_token=SecretStr(INTERNAL_TOKEN),
        plc_directory_url=world.plc.url,
    )
    catalog = catalog or InMemoryCatalog.from_json(world.catalog_json())
    pds = PdsRecords(limits=RecordLimits(), list_collection="fm.plyr.list", timeout_seconds=0.5)
    authenticator = Authenticator.from_settings(settings)
    async with open_services(settings, redis=redis, catalog=catalog, store=store) as services:
        app = create_app(
            services,
            authenticator,
            pds=pds,
            limits=limits or AnswerLimits(cache_retry_seconds=0.0, miss_timeout_seconds=5.0),
        )
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
                yield Api(client, app, redis)
    await authenticator.aclose()


@pytest.fixture
async def api(
    world: World, redis_client: aioredis.Redis, exact_store: ExactStore
) -> AsyncIterator[Api]:
    async with running_api(world, redis_client, store=exact_store) as running:
        yield running


def bearer(identity: Identity, *, age: float = 0.0, **overrides: Any) -> dict[str, str]:
    """a service-auth JWT of `identity`, minted `age` seconds ago (lifetime 60 s)."""
    claims: dict[str, Any] = {"aud": SERVICE_DID, "now": time.time() - age, **overrides}
    return {"Authorization": f"Bearer {identity.service_jwt(**claims)}"}


def internal(viewer_did: str, token: str = INTERNAL_TOKEN) -> dict[str, str]:
    return {"X-Internal-Token": token, "X-Viewer-Did": viewer_did}


def sample_tracks(count: int) -> list[Track]:
    return [Track(100 + n, f"cached {n}", "nova.bsky.social", "Nova", None) for n in range(count)]


async def redis_lookups(redis: Any) -> int:
    """key reads the real redis-server has served so far (found or not)."""
    stats = await redis.info("stats")
    return int(stats["keyspace_hits"]) + int(stats["keyspace_misses"])


async def cached_value(redis: Any, playlist_id: str, token: str) -> CachedRecommendations | None:
    raw = await redis.get(cache_key(playlist_id, token))
    return None if raw is None else CachedRecommendations.from_json(raw)


# --- who may ask ------------------------------------------------------------------------


async def test_the_owner_with_a_service_jwt_gets_recommendations(api: Api, world: World) -> None:
    response = await api.get(PUBLIC_ID, bearer(world.alice))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"tracks", "available"}
    assert body["available"] is True
    assert len(body["tracks"]) == 3
    assert set(body["tracks"][0]) == {
        "id",
        "title",
        "artist_handle",
        "artist_display_name",
        "image_url",
    }
    assert not {track["id"] for track in body["tracks"]} & set(PDS_TRACKS)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        pytest.param({"age": 3600}, "expired", id="expired"),
        pytest.param({"aud": "did:web:someone.else"}, "bad_audience", id="wrong-aud"),
        pytest.param({"lxm": "app.bsky.feed.getTimeline"}, "bad_lxm", id="wrong-lxm"),
        pytest.param({"lxm": None}, "missing_lxm", id="missing-lxm"),
        pytest.param({"exp": None}, "missing_exp", id="missing-exp"),
    ],
)
async def test_a_bad_service_jwt_is_a_401(
    api: Api, world: World, overrides: dict[str, Any], reason: str
) -> None:
    response = await api.get(PUBLIC_ID, bearer(world.alice, **overrides))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"detail": reason}


async def test_a_forged_signature_is_a_401(api: Api, world: World) -> None:
    mallory = Identity.generate("k256", did=world.alice.did)  # alice's DID, not her key
    response = await api.get(PUBLIC_ID, bearer(mallory))
    assert response.status_code == 401
    assert response.json() == {"detail": "bad_signature"}


async def test_someone_elses_playlist_is_a_403(api: Api, world: World) -> None:
    assert (await api.get(BOBS_ID, bearer(world.alice))).status_code == 403
    assert (await api.get(PUBLIC_ID, bearer(world.bob))).status_code == 403
    assert (await api.get(PUBLIC_ID, internal(world.bob.did))).status_code == 403
    assert (await api.get(BOBS_ID, bearer(world.bob))).status_code == 200


async def test_the_internal_token_way_in(api: Api, world: World) -> None:
    assert (await api.get(PUBLIC_ID, internal(world.alice.did))).status_code == 200
    wrong = await api.get(PUBLIC_ID, internal(world.alice.did, token="not-the-token"))
    assert wrong.status_code == 401
    assert wrong.json() == {"detail": "internal_token"}
    assert (await api.get(PUBLIC_ID, {"X-Viewer-Did": world.alice.did})).status_code == 401


async def test_no_credentials_is_a_401_before_anything_else(api: Api) -> None:
    for playlist_id, params in ((PUBLIC_ID, {}), ("no:such", {"limit": "x"})):
        response = await api.get(playlist_id, {}, **params)
        assert response.status_code == 401
        assert response.json() == {"detail": "missing"}


async def test_an_unknown_playlist_is_a_404(api: Api, world: World) -> None:
    unknown = "99999999-9999-4999-8999-999999999999"
    assert (await api.get(unknown, bearer(world.alice))).status_code == 404


@pytest.mark.parametrize(
    "playlist_id", ["a:b", "x" * 65, "*", "..%2F..", "%00", "caf\u00e9", "a b"]
)
async def test_a_malformed_playlist_id_is_refused_without_a_lookup(
    api: Api, world: World, playlist_id: str
) -> None:
    lookups = await redis_lookups(api.redis)
    response = await api.get(playlist_id, internal(world.alice.did))
    assert response.status_code in (404, 422)
    assert await redis_lookups(api.redis) == lookups  # not even a cache read with junk


# --- the cache --------------------------------------------------------------------------


async def test_a_hit_is_served_as_cached_and_sliced(
    api: Api, world: World, exact_store: ExactStore
) -> None:
    cached = CachedRecommendations(sample_tracks(10), True, "kmeans", "fp", "then")
    await api.redis.set(cache_key(PUBLIC_ID, CID_1), cached.to_json())
    headers = bearer(world.alice)
    three = await api.get(PUBLIC_ID, headers)
    assert three.headers[SOURCE_HEADER] == "hit"
    assert three.json() == cached.response(3)
    assert (await api.get(PUBLIC_ID, headers, limit=10)).json() == cached.response(10)
    assert (await api.get(PUBLIC_ID, headers, limit=1)).json() == cached.response(1)
    assert exact_store.requests == 0
    assert world.pds.requests == []


async def test_a_miss_is_computed_written_and_then_hit(
    api: Api, world: World, exact_store: ExactStore
) -> None:
    headers = internal(world.alice.did)
    first = await api.get(PUBLIC_ID, headers, limit=10)
    assert first.headers[SOURCE_HEADER] == "computed"
    stored = await cached_value(api.redis, PUBLIC_ID, CID_1)
    assert stored is not None
    assert stored.available
    assert first.json() == stored.response(10)
    assert 0 < await api.redis.ttl(cache_key(PUBLIC_ID, CID_1)) <= 24 * 3600
    assert len(world.pds.requests) == 1  # no worker state: the tracks came from the PDS
    store_calls = exact_store.requests

    second = await api.get(PUBLIC_ID, headers, limit=10)
    assert second.headers[SOURCE_HEADER] == "hit"
    assert second.json() == first.json()
    assert exact_store.requests == store_calls
    assert len(world.pds.requests) == 1


async def test_concurrent_misses_of_one_playlist_share_one_compute(api: Api, world: World) -> None:
    headers = internal(world.alice.did)
    responses = await asyncio.gather(*(api.get(PUBLIC_ID, headers) for _ in range(8)))
    assert {response.status_code for response in responses} == {200}
    assert len({response.content for response in responses}) == 1
    assert len(world.pds.requests) == 1


async def test_cache_reads_of_one_moment_leave_as_one_mget(redis_client: aioredis.Redis) -> None:
    cache = RecommendationCache(redis_client)
    reads = CoalescedReads(cache, timeout_seconds=1.0)
    cached = CachedRecommendations(sample_tracks(2), True)
    await redis_client.set(cache_key(PUBLIC_ID, CID_1), cached.to_json())
    await redis_client.set(cache_key(EMPTY_ID, CID_1), b"{not json")
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


@pytest.mark.parametrize("limit", [0, 11, -1, "x", "", "1.5", " 3", "+3", "1e1", "100"])
async def test_a_limit_out_of_bounds_or_not_an_integer_is_a_422(
    api: Api, world: World, limit: object
) -> None:
    response = await api.get(PUBLIC_ID, internal(world.alice.did), limit=limit)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", "limit"]


async def test_limit_bounds_are_inclusive(api: Api, world: World) -> None:
    headers = internal(world.alice.did)
    assert len((await api.get(PUBLIC_ID, headers, limit=1)).json()["tracks"]) == 1
    assert len((await api.get(PUBLIC_ID, headers, limit=10)).json()["tracks"]) == 10


# --- where a miss reads the tracks ----------------------------------------------------------


async def test_the_workers_state_of_this_version_is_used_before_the_pds(
    api: Api, world: World
) -> None:
    state = PlaylistState(CID_1, "old", [3, 7, 11], [URI_OF[t] for t in STATE_TRACKS], "3m")
    await api.redis.set(state_key(PUBLIC_ID), state.to_json())
    response = await api.get(PUBLIC_ID, internal(world.alice.did), limit=10)
    assert response.status_code == 200
    assert world.pds.requests == []
    stored = await cached_value(api.redis, PUBLIC_ID, CID_1)
    assert stored is not None
    assert stored.fingerprint == fingerprint(STATE_TRACKS)
    assert not {track["id"] for track in response.json()["tracks"]} & set(STATE_TRACKS)


async def test_a_state_of_another_version_sends_the_miss_to_the_pds(api: Api, world: World) -> None:
    state = PlaylistState(CID_2, "old", [3, 7, 11], [URI_OF[t] for t in STATE_TRACKS], "3m")
    await api.redis.set(state_key(PUBLIC_ID), state.to_json())
    response = await api.get(PUBLIC_ID, internal(world.alice.did))
    assert response.status_code == 200
    assert len(world.pds.requests) == 1
    assert world.pds.requests[0]["repo"] == world.alice.did
    stored = await cached_value(api.redis, PUBLIC_ID, CID_1)
    assert stored is not None
    assert stored.fingerprint == fingerprint(PDS_TRACKS)


async def test_a_pds_ahead_of_the_database_is_answered_and_cached_under_its_cid(
    api: Api, world: World
) -> None:
    world.pds.put(
        world.record_uri("3mpublic22222"), CID_2, list_record([URI_OF[t] for t in PDS_TRACKS])
    )
    response = await api.get(PUBLIC_ID, internal(world.alice.did))
    assert response.headers[SOURCE_HEADER] == "computed"
    assert response.json()["available"] is True
    assert await api.redis.exists(cache_key(PUBLIC_ID, CID_2)) == 1
    assert await api.redis.exists(cache_key(PUBLIC_ID, CID_1)) == 0


async def test_a_private_playlist_uses_its_items_and_updated_at(api: Api, world: World) -> None:
    response = await api.get(PRIVATE_ID, internal(world.alice.did))
    assert response.status_code == 200
    assert response.json()["available"] is True
    assert world.pds.requests == []
    stored = await cached_value(api.redis, PRIVATE_ID, PRIVATE_UPDATED_AT.isoformat())
    assert stored is not None
    assert stored.fingerprint == fingerprint(PRIVATE_TRACKS)


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
        await redis_client.set(cache_key(PUBLIC_ID, CID_1), cached.to_json())
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


# --- health and metrics ----------------------------------------------------------------


async def test_health_reports_each_dependency(
    api: Api, world: World, redis_client: aioredis.Redis
) -> None:
    healthy = await api.client.get("/health")
    assert healthy.status_code == 200
    assert healthy.json() == {
        "status": "ok",
        "degraded": False,
        "redis": "ok",
        "catalog": "ok",
        "store": "ExactStore",
        "computes_in_flight": 0,
    }
    async with running_api(world, redis_client, store=None) as bare:
        report = (await bare.client.get("/health")).json()
        assert (report["status"], report["store"]) == ("degraded", "disabled")


async def test_metrics_count_requests_cache_results_and_computes(api: Api, world: World) -> None:
    headers = internal(world.alice.did)
    await api.get(PUBLIC_ID, headers)  # miss, computed
    await api.get(PUBLIC_ID, headers)  # hit
    await api.get(PUBLIC_ID, {})  # 401
    await api.get(PUBLIC_ID, headers, limit=11)  # 422
    text = (await api.client.get("/metrics")).text
    route = 'route="/playlists/{playlist_id}/recommendations"'
    for line in (
        f'plyr_recs_api_requests_total{{{route},status="200"}} 2.0',
        f'plyr_recs_api_requests_total{{{route},status="401"}} 1.0',
        f'plyr_recs_api_requests_total{{{route},status="422"}} 1.0',
        'plyr_recs_api_cache_total{result="hit"} 1.0',
        'plyr_recs_api_cache_total{result="miss"} 1.0',
        'plyr_recs_api_answers_total{source="computed"} 1.0',
        'plyr_recs_api_track_sources_total{source="pds"} 1.0',
        "plyr_recs_api_compute_seconds_count 1.0",
        'plyr_recs_api_auth_total{kind="accepted:internal"} 3.0',
        'plyr_recs_api_auth_total{kind="rejected:missing"} 1.0',
    ):
        assert line in text, line


# --- plyr.fm's PostgreSQL ----------------------------------------------------------------


async def test_on_postgres_the_owners_pds_comes_from_artists_and_a_lost_database_is_a_503(
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

            name = postgres_dsn.rsplit("/", 1)[1]
            admin = await asyncpg.connect(postgres_server.dsn())
            try:
                await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            finally:
                await admin.close()
            lost = await api.get(PUBLIC_ID, bearer(world.alice))
            assert lost.status_code == 503
            assert lost.headers["retry-after"] == "5"
            assert (await api.client.get("/health")).json()["catalog"] == "down"
    finally:
        await catalog.aclose()
