"""a world for API tests: two accounts with real keys, their playlists in the sample
catalogue, a local PLC directory and a local PDS; and the API over it.

`running_api` builds the app exactly as `plyr-recs api` does (`create_app` over
`open_services`), runs its lifespan, and talks to it through httpx's ASGI
transport, so nothing listens and nothing leaves the host.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import SecretStr

from bench.loopback.asgi import app_client
from engine.cache import CachedRecommendations, cache_key
from engine.memory_catalog import InMemoryCatalog
from engine.ports import Catalog, VectorStore
from engine.types import Track
from jetstream.records import RecordLimits
from tests.support.did_server import Identity, PlcDirectory
from tests.support.pds_server import PdsServer, list_record
from tests.support.samples import load_catalog
from worker.api.answers import AnswerLimits
from worker.api.app import create_app
from worker.identity.auth import Authenticator
from worker.identity.pds import PdsRecords
from worker.recs.services import open_services
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


@asynccontextmanager
async def built_world() -> AsyncIterator[World]:
    """alice (k256) and bob (p256) published, alice's records on the PDS."""
    async with PlcDirectory() as plc, PdsServer() as pds:
        alice = plc.publish(Identity.generate("k256"))
        bob = plc.publish(Identity.generate("p256"))
        built = World(alice, bob, pds, plc)
        pds.put(
            built.record_uri("3mpublic22222"), CID_1, list_record([URI_OF[t] for t in PDS_TRACKS])
        )
        pds.put(built.record_uri("3mempty222222"), CID_1, list_record([]))
        yield built


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
    **settings_overrides: Any,
) -> AsyncIterator[Api]:
    settings = Settings(
        _env_file=None,
        service_did=SERVICE_DID,
        internal_api_token=SecretStr(INTERNAL_TOKEN),
        plc_directory_url=world.plc.url,
        **settings_overrides,
    )
    catalog = catalog or InMemoryCatalog.from_json(world.catalog_json())
    pds = PdsRecords(
        limits=RecordLimits(),
        list_collection="fm.plyr.list",
        timeout_seconds=0.5,
        allow_private=True,  # the PDS is a loopback server
    )
    authenticator = Authenticator.from_settings(settings)
    async with open_services(settings, redis=redis, catalog=catalog, store=store) as services:
        app = create_app(
            services,
            authenticator,
            pds=pds,
            limits=limits or AnswerLimits(cache_retry_seconds=0.0, miss_timeout_seconds=5.0),
        )
        async with app_client(app, base_url="http://api.test") as client:
            yield Api(client, app, redis)
    await authenticator.aclose()


def bearer(identity: Identity, *, age: float = 0.0, **overrides: Any) -> dict[str, str]:
    """a service-auth JWT of `identity`, minted `age` seconds ago (lifetime 60 s)."""
    claims: dict[str, Any] = {"aud": SERVICE_DID, "now": time.time() - age, **overrides}
    return {"Authorization": f"Bearer {identity.service_jwt(**claims)}"}


def internal(viewer_did: str, token: str = INTERNAL_TOKEN) -> dict[str, str]:
    return {"X-Internal-Token": token, "X-Viewer-Did": viewer_did}


def sample_tracks(count: int) -> list[Track]:
    """cached tracks as a worker would have left them: ids of the sample catalogue's
    surfaceable tracks (the API checks a hit's ids with the catalog when no withdrawal
    round ran lately), titles of their own so a test sees the cache was served."""
    assert count <= 20
    return [Track(11 + n, f"cached {n}", "nova.bsky.social", "Nova", None) for n in range(count)]


async def redis_lookups(redis: Any) -> int:
    """key reads the real redis-server has served so far (found or not)."""
    stats = await redis.info("stats")
    return int(stats["keyspace_hits"]) + int(stats["keyspace_misses"])


async def cached_value(redis: Any, playlist_id: str, token: str) -> CachedRecommendations | None:
    raw = await redis.get(cache_key(playlist_id, token))
    return None if raw is None else CachedRecommendations.from_json(raw)
