"""the world every reliability scenario shares, and nobody breaks for good.

a generated catalogue (worker.demo) in a real PostgreSQL started from the shared
schema, its vectors in the turbopuffer-speaking server (in a process of its
own), the synthetic stream, and the oracle: the engine on this healthy world,
which says what any version's cache entry must hold. scenarios stop and start
PostgreSQL and arm the turbopuffer server's faults, and put them back.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from bench.loopback.catalog_rows import load_into_postgres
from bench.loopback.servers import PostgresServer
from bench.reliability.check import Comparable, Oracle
from bench.reliability.stream import SyntheticStream, generate_stream
from bench.reliability.turbopuffer import RemoteTurbopuffer, save_vectors
from engine.schema import SCHEMA_PATH
from worker.demo import DemoCatalogue, generate_catalogue
from worker.recs.recommender import Recommender
from worker.recs.services import open_services
from worker.settings import Settings

NAMESPACE = "plyr-tracks"
TURBOPUFFER_KEY = "reliability-key"
REDELIVERY_SECONDS = 2.0  # WORKER_REDELIVERY_SECONDS: a killed worker's task comes back fast
SPACING_US = 1_000  # time_us between two frames of the stream


@dataclass(frozen=True)
class WorldSize:
    """how big a world and its stream are."""

    tracks: int
    artists: int
    regions: int
    playlists: int
    frames: int
    frames_per_second: float  # the replay server's pace (faults land mid-stream)
    seed: int = 6


# the CI world: each playlist lives as long (in edits and in seconds: half the frames at
# half the pace) as in the 40-playlist stream it replaced, with half as many alive at
# once; that one ran CPU-bound at ~60 frames a second on a shared 2-core host, twice as
# long as its pace, and this one keeps to its pace. (17 live, 3 deleted with seed 6.)
CI_SIZE = WorldSize(tracks=800, artists=40, regions=8, playlists=20, frames=200,
                    frames_per_second=75)  # fmt: skip
FULL_SIZE = WorldSize(tracks=2_000, artists=100, regions=16, playlists=200, frames=5_000,
                      frames_per_second=250)  # fmt: skip


class World:
    """the catalogue in PostgreSQL and turbopuffer, and the stream; shared by all runs."""

    def __init__(self, size: WorldSize, directory: Path) -> None:
        self.size = size
        self.directory = directory
        self.postgres = PostgresServer()
        self.turbopuffer = RemoteTurbopuffer(directory / "vectors.npz", NAMESPACE)
        self.dsn = ""
        self.catalogue: DemoCatalogue | None = None
        self.stream: SyntheticStream | None = None
        self.reference: dict[str, Comparable] | None = None
        self.reference_outcome: Any = None  # the fault-free run's Outcome
        self._oracle_stack = AsyncExitStack()
        self.oracle: Oracle | None = None

    async def start(self) -> None:
        size = self.size
        self.directory.mkdir(parents=True, exist_ok=True)
        self.catalogue = generate_catalogue(
            tracks=size.tracks, artists=size.artists, regions=size.regions, seed=size.seed
        )
        start_us = int(time.time() * 1e6) - size.frames * 2 * SPACING_US - 60_000_000
        self.stream = generate_stream(
            self.catalogue,
            playlists=size.playlists,
            frames=size.frames,
            seed=size.seed,
            start_time_us=start_us,
            spacing_us=SPACING_US,
        )
        await asyncio.to_thread(self.postgres.start)
        self.dsn = await _create_database(self.postgres)
        await load_into_postgres(self.dsn, _catalog_rows(self.catalogue, self.stream))
        ids = [int(track_id) for track_id in self.catalogue.track_ids]
        save_vectors(self.turbopuffer.vectors, await self.catalogue.store.get_vectors(ids))
        await self.turbopuffer.start()
        services = await self._oracle_stack.enter_async_context(
            open_services(self.settings(redis_url=None, docket_name="oracle"), redis=None)
        )
        self.oracle = Oracle(
            Recommender(catalog=services.catalog, store=services.store, cache=None)
        )

    async def close(self) -> None:
        await self._oracle_stack.aclose()
        await self.turbopuffer.stop()
        await asyncio.to_thread(self.postgres.cleanup)

    def settings(self, *, redis_url: str | None, docket_name: str, **overrides: Any) -> Settings:
        """the settings every process of a run shares (env for the subprocesses)."""
        values: dict[str, Any] = {
            "redis_url": redis_url,
            "docket_url": redis_url or "memory://",
            "docket_name": docket_name,
            "database_url": self.dsn,
            "turbopuffer_api_key": TURBOPUFFER_KEY,
            "turbopuffer_base_url": self.turbopuffer.base_url,
            "turbopuffer_namespace": NAMESPACE,
            "turbopuffer_timeout_seconds": 1.0,
            "turbopuffer_max_retries": 1,
            "internal_api_token": "reliability-internal-token",
            "debounce_seconds": 0.5,
            "playlist_wait_seconds": 1.0,
            "worker_concurrency": 8,
            "worker_redelivery_seconds": REDELIVERY_SECONDS,
            "jetstream_cursor_flush_seconds": 0.05,
            "jetstream_cursor_rewind_seconds": 0.05,
            "jetstream_rotation_rewind_seconds": 0.2,
            "jetstream_backoff_base_seconds": 0.05,
            "jetstream_backoff_cap_seconds": 0.5,
            "jetstream_stats_seconds": 1.0,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)


async def _create_database(postgres: PostgresServer) -> str:
    name = f"reliability_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(postgres.dsn())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    connection = await asyncpg.connect(postgres.dsn(name))
    try:
        await connection.execute(SCHEMA_PATH.read_text())
    finally:
        await connection.close()
    return postgres.dsn(name)


def _catalog_rows(catalogue: DemoCatalogue, stream: SyntheticStream) -> dict[str, Any]:
    """catalog.json-shaped rows: the demo catalogue's artists and tracks, the stream's
    playlists at their final CID."""
    artists = [
        {
            "did": a.did,
            "handle": a.handle,
            "display_name": a.display_name,
            "avatar_url": a.avatar_url,
            "deactivated": a.deactivated,
        }
        for a in catalogue.artists
    ]
    tracks = [
        {
            "id": t.id,
            "title": t.title,
            "artist_did": t.artist_did,
            "atproto_record_uri": t.record_uri,
            "atproto_record_cid": t.record_cid,
            "image_url": t.image_url,
            "visibility": t.visibility,
            "self_labels": sorted(t.self_labels or ()),
            "operator_labels": sorted(t.operator_labels or ()),
            "moderation_override": t.moderation_override,
            "publish_state": t.publish_state,
            "support_gate": _gate(t.visibility) if t.gated else None,
        }
        for t in catalogue.tracks
    ]
    return {"artists": artists, "tracks": tracks, "playlists": stream.playlist_rows()}


def _gate(visibility: str) -> dict[str, str]:
    """the support_gate plyr.fm writes: supporters-only, or a copyright gate on a public track."""
    return {"type": "any" if visibility == "supporters" else "copyright"}
