"""the HTTP API through an HTTP client: who may ask, the cache, where a miss reads
its tracks, /health and /metrics (the degradations: test_api_degradation.py).

real parts: the session redis-server (flushed), the sample catalogue in an
InMemoryCatalog, an ExactStore of the samples' test vectors, a local PLC
directory with keys made in the test, a local PDS serving the list records
(tests.support.api_world).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from engine.cache import CachedRecommendations, PlaylistState, cache_key, fingerprint, state_key
from engine.exact_store import ExactStore
from engine.ports import TransientStoreError
from tests.support.api_world import (
    BOBS_ID,
    CID_1,
    CID_2,
    PDS_TRACKS,
    PRIVATE_ID,
    PRIVATE_TRACKS,
    PRIVATE_UPDATED_AT,
    PUBLIC_ID,
    STATE_TRACKS,
    URI_OF,
    Api,
    World,
    bearer,
    built_world,
    cached_value,
    internal,
    redis_lookups,
    running_api,
    sample_tracks,
)
from tests.support.did_server import Identity
from tests.support.pds_server import list_record
from tests.support.world import sample_store
from worker.api.app import SOURCE_HEADER


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


# --- who may ask ------------------------------------------------------------------------


async def test_the_owner_with_a_service_jwt_gets_recommendations(api: Api, world: World) -> None:
    response = await api.get(PUBLIC_ID, bearer(world.alice))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"tracks", "available"}
    assert body["available"] is True
    assert len(body["tracks"]) == 3
    # the seed's five fields, and why: a playlist track (the PDS's record holds them)
    assert set(body["tracks"][0]) == {
        "id",
        "title",
        "artist_handle",
        "artist_display_name",
        "image_url",
        "because",
    }
    assert not {track["id"] for track in body["tracks"]} & set(PDS_TRACKS)
    assert {track["because"]["id"] for track in body["tracks"]} <= set(PDS_TRACKS)


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
    await api.redis.set(cache_key(PUBLIC_ID, CID_1), cached.to_json(), ex=60)
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
    # the store requests of hits alone: no speculative answers in the background
    api.app.state.api.answers.speculation.per_answer = 0
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


@pytest.mark.parametrize("limit", [0, 11, -1, "x", "", "1.5", " 3", "+3", "1e1", "100"])
async def test_a_limit_out_of_bounds_or_not_an_integer_is_a_422(
    api: Api, world: World, limit: object
) -> None:
    response = await api.get(PUBLIC_ID, internal(world.alice.did), limit=limit)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", "limit"]


async def test_limit_bounds_are_inclusive(api: Api, world: World) -> None:
    # a cached answer of 12 (the sample catalogue has 3 artists: a computed answer,
    # two tracks per artist, holds 6)
    cached = CachedRecommendations(sample_tracks(12), True, "kmeans", "fp", "then")
    await api.redis.set(cache_key(PUBLIC_ID, CID_1), cached.to_json(), ex=60)
    headers = internal(world.alice.did)
    assert len((await api.get(PUBLIC_ID, headers, limit=1)).json()["tracks"]) == 1
    assert len((await api.get(PUBLIC_ID, headers, limit=10)).json()["tracks"]) == 10


async def test_more_is_the_next_tracks_of_the_same_cached_answer(
    api: Api, world: World, exact_store: ExactStore
) -> None:
    # 20: the sample catalogue's surfaceable tracks (a hit is checked against it)
    cached = CachedRecommendations(sample_tracks(20), True, "kmeans", "fp", "then")
    await api.redis.set(cache_key(PUBLIC_ID, CID_1), cached.to_json(), ex=60)
    headers = internal(world.alice.did)
    first = await api.get(PUBLIC_ID, headers)
    assert first.json() == cached.response(3)  # the default answer is unchanged
    assert (await api.get(PUBLIC_ID, headers, offset=0)).json() == first.json()
    more = await api.get(PUBLIC_ID, headers, limit=3, offset=3)
    assert more.headers[SOURCE_HEADER] == "hit"
    assert [t["id"] for t in more.json()["tracks"]] == [t.id for t in sample_tracks(6)[3:]]
    last = await api.get(PUBLIC_ID, headers, limit=10, offset=10)
    assert [t["id"] for t in last.json()["tracks"]] == [t.id for t in sample_tracks(20)[10:]]
    past = await api.get(PUBLIC_ID, headers, limit=10, offset=20)
    assert past.json() == {"tracks": [], "available": True}
    assert exact_store.requests == 0


async def test_more_after_a_miss_reads_the_entry_the_miss_wrote(
    api: Api, world: World, exact_store: ExactStore
) -> None:
    # the store requests of hits alone: no speculative answers in the background
    api.app.state.api.answers.speculation.per_answer = 0
    headers = internal(world.alice.did)
    first = await api.get(PUBLIC_ID, headers, limit=3)
    assert first.headers[SOURCE_HEADER] == "computed"
    stored = await cached_value(api.redis, PUBLIC_ID, CID_1)
    assert stored is not None
    assert len(stored.tracks) > 3  # the entry keeps more than an answer shows
    store_calls = exact_store.requests
    more = await api.get(PUBLIC_ID, headers, limit=3, offset=3)
    assert more.headers[SOURCE_HEADER] == "hit"
    assert more.json() == stored.response(3, 3)
    assert not {t["id"] for t in more.json()["tracks"]} & {t["id"] for t in first.json()["tracks"]}
    assert exact_store.requests == store_calls


@pytest.mark.parametrize("offset", [-1, 21, "x", "", "1.5", " 3", "+3", "1e1", "100"])
async def test_an_offset_out_of_bounds_or_not_an_integer_is_a_422(
    api: Api, world: World, offset: object
) -> None:
    response = await api.get(PUBLIC_ID, internal(world.alice.did), offset=offset)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", "offset"]


async def test_offset_bounds_are_inclusive(api: Api, world: World) -> None:
    cached = CachedRecommendations(sample_tracks(20), True, "kmeans", "fp", "then")
    await api.redis.set(cache_key(PUBLIC_ID, CID_1), cached.to_json(), ex=60)
    headers = internal(world.alice.did)
    for offset in (0, 20):
        response = await api.get(PUBLIC_ID, headers, offset=offset)
        assert response.status_code == 200
        assert response.json() == cached.response(3, offset)


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


async def test_a_pds_ahead_of_the_database_is_answered_but_cached_under_no_key(
    api: Api, world: World
) -> None:
    """the CID is the PDS's word: only the version plyr.fm's database names is cached
    (issue 16; tests/test_hardening_pds.py has the PDS that lies)."""
    world.pds.put(
        world.record_uri("3mpublic22222"), CID_2, list_record([URI_OF[t] for t in PDS_TRACKS])
    )
    response = await api.get(PUBLIC_ID, internal(world.alice.did))
    assert response.headers[SOURCE_HEADER] == "computed_uncached"
    assert response.json()["available"] is True
    assert await api.redis.exists(cache_key(PUBLIC_ID, CID_2)) == 0
    assert await api.redis.exists(cache_key(PUBLIC_ID, CID_1)) == 0


async def test_a_private_playlist_uses_its_items_and_updated_at(api: Api, world: World) -> None:
    response = await api.get(PRIVATE_ID, internal(world.alice.did))
    assert response.status_code == 200
    assert response.json()["available"] is True
    assert world.pds.requests == []
    stored = await cached_value(api.redis, PRIVATE_ID, PRIVATE_UPDATED_AT.isoformat())
    assert stored is not None
    assert stored.fingerprint == fingerprint(PRIVATE_TRACKS)


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
        "turbopuffer": "ok",
        "computes_in_flight": 0,
    }
    async with running_api(world, redis_client, store=None) as bare:
        report = (await bare.client.get("/health")).json()
        assert (report["status"], report["store"]) == ("degraded", "disabled")
        assert report["turbopuffer"] == "disabled"


class DeadStore:
    """a vector store whose every call fails, as turbopuffer unreachable does."""

    async def get_vectors(self, track_ids: Any) -> Any:
        raise TransientStoreError("turbopuffer unreachable")

    async def query_many(self, vectors: Any, *, top_k: int, exclude_ids: Any) -> Any:
        raise TransientStoreError("turbopuffer unreachable")


async def test_a_dead_vector_store_shows_in_health_and_metrics(
    world: World, redis_client: aioredis.Redis
) -> None:
    """issue 22: every answer was `available: false` while /health said ok."""
    async with running_api(world, redis_client, store=DeadStore()) as api:
        report = (await api.client.get("/health")).json()
        ready = await api.client.get("/health/ready")
        metrics = (await api.client.get("/metrics")).text
    assert (report["turbopuffer"], report["status"], report["degraded"]) == (
        "down",
        "degraded",
        True,
    )
    # still ready: the cache serves every precomputed answer without turbopuffer
    assert ready.status_code == 200
    assert ready.json()["turbopuffer"] == "down"
    assert 'plyr_recs_dependency_up{dependency="turbopuffer"} 0.0' in metrics
    assert 'plyr_recs_dependency_up{dependency="redis"} 1.0' in metrics


async def test_with_a_metrics_port_the_public_port_serves_no_metrics(
    world: World, redis_client: aioredis.Redis
) -> None:
    async with running_api(world, redis_client, store=sample_store()) as api:
        api.app.state.api = dataclasses.replace(api.app.state.api, public_metrics=False)
        hidden = await api.client.get("/metrics")
    assert hidden.status_code == 404


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
