"""`python -m bench floor`'s world and servers: what one recompute talks to, on loopback.

the world is `bench scale`'s (`WorldSpec(playlists=2_000)`: 10,000 tracks in 16
sound regions, playlists of 5 to 40 tracks), loaded into a real PostgreSQL built
from the repository's schema (`bench.loopback.plyr_database`); the turbopuffer
stand-in is the load benchmarks' indexed one with the world's vectors, no latency
(`python -m bench.load.servers turbopuffer`); Redis is a real redis-server; the
playlists' owners' PDS is the loopback one, holding the typical playlist's record
(`python -m bench.load.servers pds`). each runs in a process of its own, so the
benchmark's CPU is the caller's alone.

the recomputes measured are of the world's playlists, each given its own `tracks`
tracks, drawn in equal parts from three regions (three moods: the engine's plan is
three centroids, as a typical playlist's) and disjoint from every other playlist's:
no recompute finds its vectors in the process's vector cache because an earlier one
looked them up, so each does the whole id lookup the parts measure.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import sys
import tempfile
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import orjson

from bench.journey_stack import wait_for_port
from bench.load.servers import NAMESPACE
from bench.load.stack import ServiceProcess
from bench.load.world import KnownPlaylist, WorldSpec
from bench.loopback.catalog_rows import load_into_postgres
from bench.loopback.plyr_database import plyr_database
from bench.loopback.servers import RedisServer, free_port

WORLD: Final = WorldSpec(playlists=2_000)  # `bench scale`'s size in issue 20's figure
MOODS: Final = 3  # regions a playlist's tracks are drawn from
MOOD_STRIDE: Final = 5  # playlist i's moods: regions i, i + 5, i + 10 (mod 16)
API_KEY: Final = "floor-bench"


def median_playlist_size(world: WorldSpec = WORLD) -> int:
    """the median number of tracks of the world's playlists (rounded down)."""
    return int(statistics.median(len(known.track_ids) for known in world.known))


def max_playlists(tracks: int, world: WorldSpec = WORLD) -> int:
    """how many playlists of `tracks` tracks fit in the world with no track shared."""
    per_region = world.tracks // world.regions
    return min(world.playlists, per_region // -(-tracks // MOODS) * world.regions // MOODS)


@dataclass(frozen=True)
class FloorPlaylist:
    """a playlist of the world with the tracks the benchmark gives it."""

    known: KnownPlaylist
    track_ids: tuple[int, ...]

    @property
    def uri(self) -> str:
        return self.known.record_uri

    def track_uris(self, world: WorldSpec = WORLD) -> list[str]:
        return [world.track_uri(track_id) for track_id in self.track_ids]


def floor_playlists(count: int, tracks: int, world: WorldSpec = WORLD) -> list[FloorPlaylist]:
    """`count` playlists of `tracks` tracks each, three moods apiece, no track in two."""
    if not 1 <= count <= max_playlists(tracks, world):
        raise ValueError(
            f"{count} playlists of {tracks} tracks do not fit in {world.tracks:,} tracks "
            f"without sharing one (at most {max_playlists(tracks, world)})"
        )
    taken = [0] * world.regions  # tracks handed out so far, per region
    chosen = []
    for index in range(count):
        ids: list[int] = []
        for mood in range(MOODS):
            region = (index + mood * MOOD_STRIDE) % world.regions
            share = tracks // MOODS + (1 if mood < tracks % MOODS else 0)
            in_region = world.region_tracks(region)
            ids += in_region[taken[region] : taken[region] + share]
            taken[region] += share
        chosen.append(FloorPlaylist(world.known[index], tuple(ids)))
    return chosen


class FloorServers:
    """PostgreSQL with the world's rows, the turbopuffer stand-in, a redis-server, a
    PDS holding `records` (`{uri: (cid, value)}`): started on enter, stopped (and
    their directories removed) on exit, Ctrl-C too."""

    def __init__(
        self, world: WorldSpec = WORLD, *, records: dict[str, tuple[str, Any]] | None = None
    ) -> None:
        self.world = world
        self.records = records or {}
        self.directory = Path(tempfile.mkdtemp(prefix="plyr-floor-"))
        self.turbopuffer_port = free_port()
        self.pds_port = free_port()
        self.database_dsn = ""
        self.redis = RedisServer(self.directory / "redis")
        self._stack = AsyncExitStack()

    @property
    def turbopuffer_url(self) -> str:
        return f"http://127.0.0.1:{self.turbopuffer_port}"

    @property
    def pds_url(self) -> str:
        return f"http://127.0.0.1:{self.pds_port}"

    @property
    def namespace(self) -> str:
        return NAMESPACE

    async def __aenter__(self) -> Self:
        try:
            await self._start()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            await self._stack.aclose()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    async def _start(self) -> None:
        world_json = orjson.dumps(asdict(self.world)).decode()
        command = [sys.executable, "-m", "bench.load.servers", "turbopuffer"]
        turbopuffer = ServiceProcess(
            "turbopuffer",
            [*command, str(self.turbopuffer_port), world_json],
            env=os.environ,
            cwd=self.directory,
            stdin=False,
        )
        self._stack.callback(turbopuffer.stop)
        pds = ServiceProcess(
            "pds",
            [*command[:-1], "pds", str(self.pds_port), orjson.dumps(self.records).decode()],
            env=os.environ,
            cwd=self.directory,
            stdin=False,
        )
        self._stack.callback(pds.stop)
        await asyncio.to_thread(self.redis.start)
        self._stack.callback(self.redis.stop)
        # PostgreSQL starts and fills while the stand-in builds its index
        self.database_dsn = await plyr_database(self._stack)
        await load_into_postgres(self.database_dsn, self.world.catalog_rows())
        await wait_for_port(turbopuffer, self.turbopuffer_port)
        await wait_for_port(pds, self.pds_port)
