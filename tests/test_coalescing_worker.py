"""a burst of recomputes in a real worker shares turbopuffer requests and PostgreSQL
hydrate statements, and answers as the same recomputes do one at a time.

every part is real: docket and the cache on a redis-server, plyr.fm's PostgreSQL
(from the shared schema), the real turbopuffer client against the loopback
server, the services as `open_services` builds them (the coalescer under the
shared budget). the vector cache is off, so each recompute asks turbopuffer for
its vectors and its neighbours: two requests alone.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from docket import Docket

from bench.loopback.catalog_rows import load_into_postgres
from bench.loopback.servers import RedisServer
from bench.loopback.turbopuffer import TurbopufferServer
from engine.cache import cache_key
from engine.coalescing import CoalescingStats
from engine.coalescing_catalog import CoalescingCatalog
from engine.coalescing_store import CoalescingStore
from engine.query_gate import GatedStore
from tests.support.reconcile_world import fake_cid
from tests.support.samples import load_catalog, track_vector
from tests.support.world import drain
from worker.recs.services import open_services
from worker.settings import Settings
from worker.store.store_budget import BudgetedStore
from worker.tasks.playlist import recompute_playlist

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SAMPLE = load_catalog()
OWNER = SAMPLE["artists"][0]["did"]
BURST = 12
REV = "3m64hnzv42222"


def burst_playlists() -> list[dict[str, Any]]:
    """BURST playlists of different sets of the sample's tracks (no answer is a copy
    of another's: each set is new to the cache)."""
    tracks = SAMPLE["tracks"]
    playlists = []
    for n in range(BURST):
        chosen = [tracks[(n * 3 + step * (n + 1)) % len(tracks)] for step in range(2 + n % 7)]
        uris = list(dict.fromkeys(track["atproto_record_uri"] for track in chosen))
        rkey = f"3m64hnzv5{'abcdefghijklmnop'[n]}222"
        playlists.append(
            {
                "id": str(uuid.UUID(int=n + 1)),
                "owner_did": OWNER,
                "name": f"burst {n}",
                "atproto_record_uri": f"at://{OWNER}/fm.plyr.list/{rkey}",
                "atproto_record_cid": fake_cid(rkey),
                "track_count": len(uris),
                "uris": uris,
            }
        )
    return playlists


@pytest.fixture
async def turbopuffer() -> AsyncIterator[TurbopufferServer]:
    async with TurbopufferServer() as server:
        server.seed("plyr-tracks", {t["id"]: track_vector(t["id"]) for t in SAMPLE["tracks"]})
        yield server


async def recompute_all(
    settings: Settings, playlists: list[dict[str, Any]], *, concurrency: int
) -> tuple[dict[str, Any], CoalescingStats]:
    """every playlist recomputed by a worker running `concurrency` tasks at once: the
    cached answers by playlist id, and the catalog's hydrate calls and statements."""
    async with (
        open_services(settings) as services,
        Docket(name=settings.docket_name, url=settings.docket_url) as docket,
    ):
        gated = services.store  # no vector cache: VECTOR_CACHE_SIZE=0
        assert isinstance(gated, GatedStore)  # a batch's gate (not used by single tasks)
        store = gated.store
        assert isinstance(store, BudgetedStore)
        assert isinstance(store.inner, CoalescingStore)
        catalog = services.catalog
        assert isinstance(catalog, CoalescingCatalog)
        for playlist in playlists:
            await docket.add(recompute_playlist)(
                playlist["atproto_record_uri"],
                playlist["atproto_record_cid"],
                REV,
                playlist["uris"],
            )
        await drain(docket, services, concurrency=concurrency)
        assert services.counts["recompute:computed"] == len(playlists)
        answers = {}
        for playlist in playlists:
            raw = await services.redis.get(
                cache_key(playlist["id"], playlist["atproto_record_cid"])
            )
            assert raw is not None, playlist["name"]
            value = orjson.loads(raw)
            answers[playlist["id"]] = (value["available"], value["tracks"], value.get("more"))
        return answers, catalog.stats


async def test_a_burst_of_recomputes_shares_requests_and_answers_the_same(
    redis_server: RedisServer,
    redis_client: aioredis.Redis,
    postgres_dsn: str,
    turbopuffer: TurbopufferServer,
) -> None:
    playlists = burst_playlists()
    rows = [{k: v for k, v in p.items() if k != "uris"} for p in playlists]
    await load_into_postgres(postgres_dsn, {**SAMPLE, "playlists": rows})

    def settings(db: int) -> Settings:
        return Settings(
            _env_file=None,
            redis_url=f"{redis_server.url}/{db}",
            docket_url=f"{redis_server.url}/{db}",
            docket_name=f"burst-{uuid.uuid4().hex[:8]}",
            database_url=postgres_dsn,
            turbopuffer_api_key="test-key",
            turbopuffer_base_url=turbopuffer.base_url,
            vector_cache_size=0,
            speculative_answers=0,
        )

    try:
        # one at a time: each recompute alone, its two requests as before
        alone, hydrates_alone = await recompute_all(settings(1), playlists, concurrency=1)
        requests_alone = len(turbopuffer.requests)
        turbopuffer.reset()
        # all at once, in a database of their own (nothing cached yet)
        together, hydrates_together = await recompute_all(settings(2), playlists, concurrency=BURST)
        requests_together = len(turbopuffer.requests)
    finally:
        for db in (1, 2):  # the fixture flushes only the default database
            async with aioredis.Redis.from_url(f"{redis_server.url}/{db}") as other:
                await other.flushdb()

    assert requests_alone >= 2 * BURST
    assert requests_together < 2 * BURST
    assert together == alone
    assert all(available for available, _, _ in alone.values())
    # the recomputes a shared answer woke hydrated their candidates together too
    assert hydrates_alone.requests == hydrates_alone.calls >= BURST
    assert hydrates_together.calls == hydrates_alone.calls
    assert hydrates_together.requests < hydrates_together.calls
