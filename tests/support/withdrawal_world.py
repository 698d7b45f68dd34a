"""a world for withdrawal tests: the API world's accounts and playlists in a real
PostgreSQL (from the schema), the real turbopuffer client against the loopback
turbopuffer-speaking server, a real redis-server shared by the API and a worker's
services, docket on it, and the API through the ASGI client.

moderators' edits are SQL on the database (`sql`); the check round is run by the
test (`round`), the refills by draining docket (`drain`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from docket import Docket

from bench.loopback.catalog_rows import load_into_postgres
from bench.loopback.turbopuffer import TurbopufferServer
from engine.cache import CachedRecommendations
from engine.ports import CatalogUnavailableError
from engine.postgres_catalog import PostgresCatalog
from engine.turbopuffer_store import TurbopufferStore
from engine.types import PlaylistRef, PlaylistRow, Track
from tests.support.api_world import (
    BOBS_ID,
    NAMESPACE,
    PUBLIC_ID,
    SAMPLE,
    Api,
    World,
    built_world,
    cached_value,
    internal,
    running_api,
)
from tests.support.samples import track_vector
from tests.support.world import drain
from worker.recs.services import Services, open_services
from worker.settings import Settings
from worker.tasks.withdrawals import RoundReport, check_round

ARTIST_OF = {track["id"]: track["artist_did"] for track in SAMPLE["tracks"]}


class HeldCatalog:
    """a Catalog whose `hydrate` answers, then waits for `release` while `hold` is set:
    a recompute caught between its eligibility check and its cache write."""

    def __init__(self, inner: PostgresCatalog) -> None:
        self.inner = inner
        self.hold = False
        self.held = asyncio.Event()
        self.release = asyncio.Event()
        self.eligible_calls = 0
        self.hydrate_fails = False  # `hydrate` raises as a database that went away would

    async def resolve_tracks(self, track_uris: Sequence[str]) -> dict[str, int]:
        return await self.inner.resolve_tracks(track_uris)

    async def track_uris(self, track_ids: Sequence[int]) -> dict[int, str]:
        return await self.inner.track_uris(track_ids)

    async def resolve_playlist(self, playlist_uri: str) -> PlaylistRef | None:
        return await self.inner.resolve_playlist(playlist_uri)

    async def resolve_playlist_and_tracks(
        self, playlist_uri: str, track_uris: Sequence[str]
    ) -> tuple[PlaylistRef | None, dict[str, int]]:
        return await self.inner.resolve_playlist_and_tracks(playlist_uri, track_uris)

    async def get_playlist(self, playlist_id: str) -> PlaylistRow | None:
        return await self.inner.get_playlist(playlist_id)

    async def hydrate(self, track_ids: Sequence[int]) -> list[Track]:
        if self.hydrate_fails:
            raise CatalogUnavailableError("hydrate: the database went away")
        tracks = await self.inner.hydrate(track_ids)
        if self.hold:
            self.held.set()
            await self.release.wait()
        return tracks

    async def eligible_ids(self, track_ids: Sequence[int]) -> set[int]:
        self.eligible_calls += 1
        return await self.inner.eligible_ids(track_ids)

    async def list_playlists(self, *, after: str | None, limit: int) -> list[PlaylistRow]:
        return await self.inner.list_playlists(after=after, limit=limit)

    async def count_playlists(self) -> int:
        return await self.inner.count_playlists()


# the sample catalogue has 3 artists: with plyr.fm's 2-per-artist rule an answer
# holds 6, too few to watch spares fill in. diversity is tested on its own.
UNCAPPED = 100


@dataclass
class WithdrawalWorld:
    world: World
    dsn: str
    api: Api
    worker: Services
    docket: Docket
    api_catalog: HeldCatalog
    worker_catalog: HeldCatalog
    owners: dict[str, str] = field(default_factory=dict)

    async def sql(self, statement: str, *args: object) -> None:
        """a moderator's (or plyr.fm's) edit of plyr.fm's database."""
        connection = await asyncpg.connect(self.dsn)
        try:
            await connection.execute(statement, *args)
        finally:
            await connection.close()

    async def round(self) -> RoundReport:
        return await check_round(self.worker, self.docket)

    async def drain(self) -> None:
        await drain(self.docket, self.worker)

    async def answer(self, playlist_id: str = PUBLIC_ID, limit: int = 10) -> httpx.Response:
        owner = self.owners.get(playlist_id, self.world.alice.did)
        response = await self.api.get(playlist_id, internal(owner), limit=limit)
        assert response.status_code == 200, response.text
        return response

    async def cached(self, playlist_id: str, token: str) -> CachedRecommendations | None:
        return await cached_value(self.api.redis, playlist_id, token)


def ids(response: httpx.Response) -> list[int]:
    return [track["id"] for track in response.json()["tracks"]]


@asynccontextmanager
async def withdrawal_world(
    world: World,
    redis: Any,
    postgres_dsn: str,
    docket: Docket,
    *,
    stale_seconds: float = 60.0,
) -> AsyncIterator[WithdrawalWorld]:
    """`stale_seconds` is the API's WITHDRAWAL_STALE_SECONDS: long by default, so a round
    the test ran covers the rest of the test however slow the machine is."""
    await load_into_postgres(postgres_dsn, world.catalog_json())
    async with TurbopufferServer() as server:
        server.seed(NAMESPACE, {t["id"]: track_vector(t["id"]) for t in SAMPLE["tracks"]})
        store = TurbopufferStore(
            api_key="test", namespace=NAMESPACE, base_url=server.base_url, timeout=5.0
        )
        api_catalog = HeldCatalog(await PostgresCatalog.connect(postgres_dsn, timeout=2.0))
        worker_catalog = HeldCatalog(await PostgresCatalog.connect(postgres_dsn, timeout=2.0))
        try:
            async with (
                running_api(
                    world,
                    redis,
                    store=store,
                    catalog=api_catalog,
                    withdrawal_stale_seconds=stale_seconds,
                    max_tracks_per_artist=UNCAPPED,
                ) as api,
                open_services(
                    Settings(_env_file=None, max_tracks_per_artist=UNCAPPED),
                    redis=redis,
                    catalog=worker_catalog,
                    store=store,
                ) as worker,
            ):
                yield WithdrawalWorld(
                    world,
                    postgres_dsn,
                    api,
                    worker,
                    docket,
                    api_catalog,
                    worker_catalog,
                    owners={BOBS_ID: world.bob.did},
                )
        finally:
            await store.aclose()
            await api_catalog.inner.aclose()
            await worker_catalog.inner.aclose()


# the fixtures the withdrawal test files share (imported by name there)
@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with built_world() as built:
        yield built


@pytest.fixture
async def w(
    world: World, redis_client: aioredis.Redis, postgres_dsn: str, docket: Docket
) -> AsyncIterator[WithdrawalWorld]:
    async with withdrawal_world(world, redis_client, postgres_dsn, docket) as built:
        yield built
