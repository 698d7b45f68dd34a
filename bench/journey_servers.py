"""the journey benchmark's stand-ins with a network's latency, each in a process of its own.

    python -m bench.journey_servers pds PORT[,PORT...] WORLD_SPEC_JSON LOW_MS HIGH_MS
    python -m bench.journey_servers turbopuffer PORT WORLD_SPEC_JSON LOW_MS HIGH_MS

`pds` holds every known playlist's list record of the world (`WorldSpec.known`),
except the deleted ones (`is_deleted`), and answers `getRecord`/`listRecords` after a
latency drawn uniformly from [LOW, HIGH] ms (one per version of a record: a second
getRecord of it waits as long as the first); the driver writes a new version of a
record (the frontend's "+") with `POST /_bench/put` `{"uri", "cid", "track_ids"}`.
`turbopuffer` is the load benchmarks' indexed turbopuffer server, each request held
for a latency drawn from [LOW, HIGH] ms first. both run apart from the service, so
their CPU is not the service's.
"""

from __future__ import annotations

import asyncio
import random
import sys
from typing import Any, Final

import orjson
from aiohttp import web

from bench.load.servers import IndexedTurbopufferServer
from bench.load.world import KnownPlaylist, WorldSpec
from bench.loopback.pds import LoopbackPds, list_record_value

DELETED_EVERY: Final = 40  # one playlist in 40 is deleted from its owner's repo


def is_deleted(playlist: KnownPlaylist) -> bool:
    """in plyr.fm's database, gone from its owner's PDS (plyr.fm has not caught up)."""
    return playlist.index % DELETED_EVERY == DELETED_EVERY - 1


def record_value(world: WorldSpec, track_ids: tuple[int, ...] | list[int]) -> dict[str, Any]:
    return list_record_value([world.track_uri(t) for t in track_ids])


class JourneyPds(LoopbackPds):
    def add_routes(self, app: web.Application) -> None:
        super().add_routes(app)
        app.router.add_post("/_bench/put", self._bench_put)
        app.router.add_get("/_bench/requests", self._bench_requests)

    async def _bench_put(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        self.put(body["uri"], body["cid"], body["value"])
        return web.json_response({})

    async def _bench_requests(self, request: web.Request) -> web.StreamResponse:
        """the requests answered so far, by method (the scale benchmark's PDS reads)."""
        return web.json_response(dict(self.requests))


class SlowTurbopuffer(IndexedTurbopufferServer):
    def __init__(self, port: int, world: WorldSpec, latency: tuple[float, float]) -> None:
        super().__init__(port, world.vectors())
        self._latency = latency
        self._rng = random.Random(world.seed)

    async def _handle(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self._rng.uniform(*self._latency))
        return await super()._handle(request)


async def serve_pds(ports: list[int], world: WorldSpec, latency: tuple[float, float]) -> None:
    """one process, listening on every port of `ports`: each is a PDS host to the
    service (its per-host bound applies to each), all sharing one set of records."""
    # a record version's reads share one latency: the driver's read of it right after a
    # refetch is that refetch's own PDS wait (bench.journey, the edit flow)
    server = JourneyPds(port=ports[0], latency=latency, seed=world.seed, paired_latency=True)
    for playlist in world.known:
        if not is_deleted(playlist):
            server.put(
                playlist.record_uri, playlist.first_cid, record_value(world, playlist.track_ids)
            )
    async with server:
        assert server._runner is not None
        for port in ports[1:]:
            await web.TCPSite(server._runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()  # until the driver stops this process


async def serve_turbopuffer(port: int, world: WorldSpec, latency: tuple[float, float]) -> None:
    server = SlowTurbopuffer(port, world, latency)
    async with server:
        while True:
            await asyncio.sleep(5)
            server.reset()  # nobody reads the recorded requests: keep memory flat


def main(argv: list[str]) -> None:
    role, ports, world_json = argv[0], [int(p) for p in argv[1].split(",")], argv[2]
    latency = (float(argv[3]) / 1000, float(argv[4]) / 1000)
    world = WorldSpec(**orjson.loads(world_json))
    if role == "pds":
        asyncio.run(serve_pds(ports, world, latency))
    elif role == "turbopuffer":
        asyncio.run(serve_turbopuffer(ports[0], world, latency))
    else:
        raise SystemExit(f"unknown role {role!r}: pds or turbopuffer")


if __name__ == "__main__":
    main(sys.argv[1:])
