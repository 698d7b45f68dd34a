"""a plyr.fm that already has playlists, for the reconcile loop's tests.

real PostgreSQL (the schema, the sample tracks and artists, owners whose
`pds_url` points at loopback PDSes), the turbopuffer-speaking server with every
sample track's vector, a real redis-server for the cache and docket. the owners'
list records live on `LoopbackPds` servers: `good` answers, `bad` is the one a
test breaks.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from docket import Docket

from bench.loopback.catalog_rows import load_into_postgres
from bench.loopback.pds import LoopbackPds, list_record_value
from bench.loopback.servers import RedisServer
from bench.loopback.turbopuffer import TurbopufferServer
from engine.cache import private_token
from tests.support.samples import load_catalog, track_vector
from tests.support.world import drain
from worker.recs.services import Services, open_services
from worker.settings import Settings
from worker.store.reconcile_state import PassSummary
from worker.tasks.reconcile import reconcile_once

SAMPLE = load_catalog()
TRACK_URIS = [track["atproto_record_uri"] for track in SAMPLE["tracks"]]
ALICE = "did:plc:aliceaaaaaaaaaaaaaaaaaaa"  # four playlists: read with listRecords
BOB = "did:plc:bobbbbbbbbbbbbbbbbbbbbbb"  # two: read with getRecord
CAROL = "did:plc:carolccccccccccccccccccc"  # on the PDS a test breaks
LONG_AGO = datetime(2025, 1, 1, tzinfo=UTC)


def fake_cid(seed: str) -> str:
    """a syntactically valid CIDv1 (base32) derived from `seed`."""
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    digest = hashlib.blake2b(seed.encode(), digest_size=40).digest()
    return "bafyrei" + "".join(alphabet[b % 32] for b in digest[:52])


def record_uri(did: str, rkey: str) -> str:
    return f"at://{did}/fm.plyr.list/{rkey}"


@dataclass
class Playlist:
    playlist_id: str
    owner: str
    uri: str | None  # None: private
    cid: str | None
    track_uris: list[str]
    updated_at: datetime

    @property
    def token(self) -> str:
        return self.cid if self.cid is not None else private_token(self.updated_at)


@dataclass
class ReconcileWorld:
    dsn: str
    redis_server: RedisServer
    turbopuffer: TurbopufferServer
    good: LoopbackPds
    bad: LoopbackPds
    playlists: dict[str, Playlist] = field(default_factory=dict)

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "redis_url": self.redis_server.url,
            "docket_url": self.redis_server.url,
            "docket_name": f"reconcile-{uuid.uuid4().hex[:8]}",
            "database_url": self.dsn,
            "turbopuffer_api_key": "test-key",
            "turbopuffer_base_url": self.turbopuffer.base_url,
            "pds_max_in_flight_per_host": 1,
            "pds_timeout_seconds": 1.0,
            "pds_allow_private": True,  # the PDS stand-ins are on loopback
            "reconcile_heal_grace_seconds": 0.0,
            "reconcile_max_per_second": 1000.0,
        }
        values.update(overrides)
        return Settings(**values)

    async def add(
        self,
        name: str,
        owner: str,
        tracks: list[int],
        *,
        private: bool = False,
        on_pds: bool = True,
        updated_at: datetime = LONG_AGO,
    ) -> Playlist:
        """a playlist in plyr.fm's database and (public, `on_pds`) its record on its PDS."""
        playlist_id = str(uuid.UUID(hashlib.md5(name.encode()).hexdigest()))
        uris = [TRACK_URIS[t - 1] for t in tracks]
        uri = None if private else record_uri(owner, f"3m{name:a<11}"[:13])
        cid = None if private else fake_cid(f"{name}-1")
        playlist = Playlist(playlist_id, owner, uri, cid, uris, updated_at)
        row: dict[str, Any] = {
            "id": playlist_id,
            "owner_did": owner,
            "name": name,
            "atproto_record_uri": uri,
            "atproto_record_cid": cid,
            "is_private": private,
            "updated_at": updated_at.isoformat(),
        }
        if private:
            row["items_json"] = [{"uri": u, "cid": "bafyreitrack"} for u in uris]
        await load_into_postgres(self.dsn, {"playlists": [row]})
        if uri is not None and cid is not None and on_pds:
            self.pds_of(owner).put(uri, cid, list_record_value(uris, name=name))
        self.playlists[name] = playlist
        return playlist

    def pds_of(self, owner: str) -> LoopbackPds:
        return self.bad if owner == CAROL else self.good

    async def edit_in_database(
        self, name: str, tracks: list[int], *, updated_at: datetime | None = None
    ) -> Playlist:
        """a new version that plyr.fm ingested (its DB row) and the PDS holds, with no
        event on any firehose."""
        old = self.playlists[name]
        uris = [TRACK_URIS[t - 1] for t in tracks]
        when = updated_at or datetime.now(UTC)
        cid = fake_cid(f"{name}-{when.timestamp()}") if old.uri is not None else None
        connection = await asyncpg.connect(self.dsn)
        try:
            await connection.execute(
                "UPDATE playlists SET atproto_record_cid = $2, updated_at = $3, items_json = $4"
                " WHERE id = $1",
                old.playlist_id,
                cid,
                when,
                None if old.uri is not None else json.dumps([{"uri": u, "cid": "x"} for u in uris]),
            )
        finally:
            await connection.close()
        new = Playlist(old.playlist_id, old.owner, old.uri, cid, uris, when)
        if old.uri is not None and cid is not None:
            self.pds_of(old.owner).put(old.uri, cid, list_record_value(uris, name=name))
        self.playlists[name] = new
        return new


async def add_sample_playlists(
    world: ReconcileWorld, *, gone: bool = True, private: bool = True
) -> None:
    """alice's four playlists (read with listRecords), bob's two (getRecord), carol's two
    (on the PDS a test breaks); with `gone`, one of alice's deleted from her repo, and
    with `private`, one private playlist."""
    for index in range(4):
        await world.add(f"alice{index}", ALICE, [1 + index, 5 + index, 9 + index])
    await world.add("bob0", BOB, [2, 6])
    await world.add("bob1", BOB, [3, 7, 11, 15, 19, 23, 27])
    if gone:
        await world.add("gone", ALICE, [4, 8], on_pds=False)  # deleted from its owner's repo
    if private:
        await world.add("secret", ALICE, [10, 14], private=True)
    await world.add("carol0", CAROL, [12, 16])
    await world.add("carol1", CAROL, [13, 17])


@asynccontextmanager
async def reconcile_world(
    postgres_dsn: str, redis_server: RedisServer
) -> AsyncIterator[ReconcileWorld]:
    async with (
        TurbopufferServer() as turbopuffer,
        LoopbackPds() as good,
        LoopbackPds() as bad,
    ):
        turbopuffer.seed("plyr-tracks", {t["id"]: track_vector(t["id"]) for t in SAMPLE["tracks"]})
        owners = [
            {"did": did, "handle": f"{name}.test", "display_name": name, "pds_url": pds.url}
            for did, name, pds in (
                (ALICE, "alice", good),
                (BOB, "bob", good),
                (CAROL, "carol", bad),
            )
        ]
        await load_into_postgres(
            postgres_dsn,
            {"artists": [*SAMPLE["artists"], *owners], "tracks": SAMPLE["tracks"]},
        )
        yield ReconcileWorld(postgres_dsn, redis_server, turbopuffer, good, bad)


@asynccontextmanager
async def running_parts(settings: Settings) -> AsyncIterator[tuple[Services, Docket]]:
    async with (
        open_services(settings) as services,
        Docket(name=settings.docket_name, url=settings.docket_url) as docket,
    ):
        yield services, docket


async def pass_and_drain(services: Services, docket: Docket, **options: Any) -> PassSummary:
    """one reconcile pass, then a worker until every task it enqueued is done."""
    summary = await reconcile_once(services, docket, run="loop", **options)
    await drain(docket, services)
    return summary


def ago(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)
