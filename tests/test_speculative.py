"""the moment after "+": the refetch of the version "+" made is already computed.

the API, over the sample catalogue, the exact store and a real redis-server: an
answer served to the owner leads to the answers of the playlist plus each track it
showed being computed in the background; the version "+" then makes is served
`speculative`, equal to a full compute of it, with no vector store work.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from engine.cache import CachedRecommendations, cache_key
from engine.exact_store import ExactStore
from engine.memory_catalog import InMemoryCatalog
from tests.support.api_world import (
    CID_1,
    CID_2,
    PDS_TRACKS,
    PUBLIC_ID,
    URI_OF,
    Api,
    World,
    built_world,
    internal,
    running_api,
)
from tests.support.pds_server import list_record
from tests.support.world import sample_store
from worker.api.app import SOURCE_HEADER
from worker.store.speculative import speculative_key

pytestmark = pytest.mark.integration


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with built_world() as built:
        yield built


@pytest.fixture
def store() -> ExactStore:
    return sample_store()


@pytest.fixture
def catalog(world: World) -> InMemoryCatalog:
    return InMemoryCatalog.from_json(world.catalog_json())


@pytest.fixture
async def api(
    world: World, redis_client: aioredis.Redis, store: ExactStore, catalog: InMemoryCatalog
) -> AsyncIterator[Api]:
    async with running_api(world, redis_client, store=store, catalog=catalog) as running:
        yield running


async def press_plus(world: World, catalog: InMemoryCatalog, track_id: int) -> list[str]:
    """what the editor's "+" does: a new version of the list record on the owner's PDS
    (a new CID), which plyr.fm's ingest writes into its row; the new track URIs."""
    uris = [URI_OF[t] for t in PDS_TRACKS] + [URI_OF[track_id]]
    world.pds.put(world.record_uri("3mpublic22222"), CID_2, list_record(uris))
    row = await catalog.get_playlist(PUBLIC_ID)
    assert row is not None
    later = datetime.now(UTC) + timedelta(seconds=1)
    catalog.upsert_playlist(dataclasses.replace(row, record_cid=CID_2, updated_at=later))
    return uris


async def test_the_refetch_after_plus_is_served_speculative_and_equals_a_full_compute(
    api: Api, world: World, store: ExactStore, catalog: InMemoryCatalog
) -> None:
    headers = internal(world.alice.did)
    first = await api.get(PUBLIC_ID, headers, limit=3)
    assert first.headers[SOURCE_HEADER] == "computed"
    shown = [track["id"] for track in first.json()["tracks"]]
    assert len(shown) == 3
    answers = api.app.state.api.answers
    await answers.speculation.drain()
    assert answers.speculation.counts["computed"] == 3  # one per track shown
    for track_id in shown:
        uris = [URI_OF[t] for t in PDS_TRACKS] + [URI_OF[track_id]]
        assert await api.redis.exists(speculative_key(PUBLIC_ID, uris))
        assert 0 < await api.redis.ttl(speculative_key(PUBLIC_ID, uris)) <= 600

    uris = await press_plus(world, catalog, shown[0])
    store_requests = store.requests
    again = await api.get(PUBLIC_ID, headers, limit=10)
    assert again.headers[SOURCE_HEADER] == "speculative"
    assert store.requests == store_requests  # no turbopuffer work on the refetch
    # what it served and cached is what a full compute of that version gives
    recommender = answers.recommender
    full, _ = await recommender.compute(await recommender.track_ids(uris))
    raw = await api.redis.get(cache_key(PUBLIC_ID, CID_2))
    assert raw is not None
    cached = CachedRecommendations.from_json(raw)
    assert cached.tracks == full.tracks
    assert cached.available == full.available
    assert again.json() == full.response(10)
    assert shown[0] not in {track["id"] for track in again.json()["tracks"]}
    # the cache entry is that version's, stored through the one path (state included)
    state = await answers.cache.get_state(PUBLIC_ID)
    assert state is not None
    assert state.token == CID_2
    hit = await api.get(PUBLIC_ID, headers, limit=3)
    assert hit.headers[SOURCE_HEADER] == "hit"


async def test_speculation_waits_behind_real_misses_and_is_bounded(api: Api, world: World) -> None:
    answers = api.app.state.api.answers
    speculation = answers.speculation
    # an answer whose version has no state here (nothing known of its tracks): skipped
    speculation.after_answer("unknown-playlist", CID_1, [1, 2, 3])
    await speculation.drain()
    assert speculation.counts["no_state"] == 1
    assert speculation.counts["computed"] == 0
    # one pending job per playlist, at most `max_pending` playlists
    speculation.max_pending = 2
    speculation.busy = lambda: True  # a real miss is running: nothing starts meanwhile
    for index in range(5):
        speculation.after_answer(f"p{index}", CID_1, [1, 2, 3, 4, 5])
    assert speculation.counts["dropped:full"] == 3
    await speculation.aclose()
