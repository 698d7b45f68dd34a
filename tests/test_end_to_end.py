"""the sample story through every real part: the Jetstream replay server and the
real websockets client, the consumer, docket on a real redis-server, the worker
against a real PostgreSQL (from the shared schema) and the real turbopuffer
client talking to the local turbopuffer-speaking server, then the API."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import orjson
import pytest
import redis.asyncio as aioredis
from docket import Docket

from bench.loopback.asgi import app_client
from bench.loopback.catalog_rows import load_into_postgres
from bench.loopback.servers import RedisServer
from bench.loopback.turbopuffer import TurbopufferServer
from engine.cache import cache_key, cache_key_pattern
from jetstream.replay import ReplayServer
from tests.support.jetstream_world import eventually, loopback_config, running_consumer
from tests.support.samples import STORY_PATH, load_catalog, track_vector
from tests.support.world import P1_ID, P2_ID, drain
from worker.api.app import create_app
from worker.identity.auth import Authenticator
from worker.recs.services import open_services
from worker.settings import Settings

pytestmark = pytest.mark.timeout(120)

TOKEN = "end-to-end-internal-token"
P1_FINAL_CID = "bafyreihbuwlshzrg4w3o2k365kgarux5tymcoemmyaqg65qcuwhxz7ku7u"
P2_FINAL_CID = "bafyreifxi7jupgpejolmxl3qkapq4yrc4hwz3gr2tzxjuyprhm45c2443a"
FINAL_CIDS = {P1_ID: P1_FINAL_CID, P2_ID: P2_FINAL_CID}
P4_ID = "80597f2e-6ece-4c2d-a755-59bde0478c1b"
P1_OWNER = "did:plc:6eougfhpazchdzjqplapphgj"
P2_OWNER = "did:plc:u55ek6a47a6h5f7bjozxcczu"


@pytest.fixture
async def turbopuffer() -> AsyncIterator[TurbopufferServer]:
    async with TurbopufferServer() as server:
        server.seed(
            "plyr-tracks", {t["id"]: track_vector(t["id"]) for t in load_catalog()["tracks"]}
        )
        yield server


async def test_the_sample_story_ends_in_the_cache_and_the_api(
    redis_server: RedisServer,
    redis_client: aioredis.Redis,
    postgres_dsn: str,
    turbopuffer: TurbopufferServer,
) -> None:
    await load_into_postgres(postgres_dsn, load_catalog())
    settings = Settings(
        redis_url=redis_server.url,
        docket_url=redis_server.url,
        docket_name=f"e2e-{uuid.uuid4().hex[:8]}",
        database_url=postgres_dsn,
        turbopuffer_api_key="test-key",
        turbopuffer_base_url=turbopuffer.base_url,
        internal_api_token=TOKEN,
        playlist_wait_seconds=0.5,
        debounce_seconds=0.2,
        # the hits below are counted as sending nothing to the vector store: no
        # speculative answers in the background meanwhile (tests/test_speculative.py)
        speculative_answers=0,
    )
    frames = ReplayServer.read_frames(STORY_PATH)
    async with (
        open_services(settings) as services,
        Docket(name=settings.docket_name, url=settings.docket_url) as docket,
        ReplayServer(frames) as replay,
    ):
        config = loopback_config((replay.url,), debounce_seconds=settings.debounce_seconds)
        async with running_consumer(config, redis_client, docket) as running:
            await eventually(
                lambda: running.consumer.stats.frames >= len(frames) - 1,  # minus other collection
                what="the consumer to read the story",
            )
        await drain(docket, services)

        # every version the story ends on is cached; the deleted playlist is not
        for playlist_id, cid in FINAL_CIDS.items():
            raw = await redis_client.get(cache_key(playlist_id, cid))
            assert raw is not None, playlist_id
            value = orjson.loads(raw)
            assert value["available"] is True
            # the sample catalogue has 3 artists: at most 2 tracks each (MAX_TRACKS_PER_ARTIST)
            handles = [track["artist_handle"] for track in value["tracks"]]
            assert 1 <= len(handles) <= 6
            assert all(handles.count(handle) <= 2 for handle in handles)
        assert [k async for k in redis_client.scan_iter(match=cache_key_pattern(P4_ID))] == []
        # "not ours" (NOT_OURS_URI) has no row in plyr.fm's database: waited for, dropped
        assert services.counts["dropped:unknown_playlist"] == 1
        # the deleted playlist's recompute was cancelled before it ran; its forget
        # still ran (plyr.fm's row is there) and left nothing behind
        assert services.counts["forget:done"] == 1
        # the worker ran after the consumer: p1's five edits collapsed into its last one
        assert services.counts["recompute:computed"] == 2

        # the API answers from the cache for the owners, and refuses others
        before = len(turbopuffer.requests)
        authenticator = Authenticator.from_settings(settings)
        app = create_app(services, authenticator)
        async with app_client(app) as client:
            for playlist_id, owner in ((P1_ID, P1_OWNER), (P2_ID, P2_OWNER)):
                response = await client.get(
                    f"/playlists/{playlist_id}/recommendations",
                    params={"limit": 3},
                    headers={"X-Internal-Token": TOKEN, "X-Viewer-Did": owner},
                )
                assert response.status_code == 200
                body = response.json()
                assert body["available"] is True
                assert len(body["tracks"]) == 3
                cached = orjson.loads(
                    await redis_client.get(
                        cache_key(
                            playlist_id,
                            "x"[:0] + (P1_FINAL_CID if playlist_id == P1_ID else P2_FINAL_CID),
                        )
                    )
                )
                assert body["tracks"] == cached["tracks"][:3]
            stranger = await client.get(
                f"/playlists/{P1_ID}/recommendations",
                headers={"X-Internal-Token": TOKEN, "X-Viewer-Did": P2_OWNER},
            )
            assert stranger.status_code == 403
        await authenticator.aclose()
        assert len(turbopuffer.requests) == before  # hits: no vector store traffic
