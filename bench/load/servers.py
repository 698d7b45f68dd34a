"""the stand-ins the load benchmarks run in processes of their own.

    python -m bench.load.servers stream PORT STREAM_SPEC_JSON RATE HOLD
    python -m bench.load.servers turbopuffer PORT WORLD_SPEC_JSON
    python -m bench.load.servers pds PORT RECORDS_JSON

`stream` is a Jetstream-compatible `/subscribe` endpoint that builds frame i when it is
due (`StreamSpec.frame`), so it holds nothing however long it runs. it honours
`cursor` (frames with time_us >= cursor) and, like a host that ignores
`wantedCollections`, sends every frame of the mix. the creates of the known
playlists go as fast as the consumer reads them; what follows is sent at `RATE`
frames per second (0: as fast as read), and with HOLD=1 only once a line arrives on
stdin, so the driver decides when the edits start.

`turbopuffer` is the tests' turbopuffer-speaking server seeded with the world's
vectors, with plyr-recs' two query shapes indexed (`IndexedTurbopufferServer`). it
records every request for the tests' assertions; here nobody reads them, so they
are dropped every few seconds (a long run would otherwise grow without end).

`pds` is the loopback PDS (`bench.loopback.pds.LoopbackPds`) holding RECORDS_JSON's
records (`{uri: [cid, value]}`), for `bench floor`'s read of a playlist's record.

all run apart from the processes measured, so their CPU and memory are not the
service's (the driver reports every process's CPU time separately).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import sys
import time
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import numpy as np
import numpy.typing as npt
import orjson
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from bench.load.world import FIRST_TRACK_ID, StreamSpec, WorldSpec
from bench.loopback.pds import LoopbackPds
from bench.loopback.turbopuffer import BILLING, PERFORMANCE, TurbopufferServer
from jetstream.replay import is_utf8

HOST: Final = "127.0.0.1"
NAMESPACE: Final = "plyr-tracks"
RECORDED_REQUESTS_KEPT_SECONDS: Final = 5.0
# what an ANN subquery of `engine.turbopuffer_store` carries
ANN_FIELDS: Final = frozenset({"rank_by", "top_k", "distance_metric", "filters"})
YIELD_EVERY: Final = 16  # frames sent between two turns of the event loop


def _cursor(path: str) -> int | None:
    values = parse_qs(urlsplit(path).query).get("cursor")
    if not values:
        return None
    cursor = int(values[-1])
    return cursor if cursor >= 0 else None


async def serve_stream(port: int, stream: StreamSpec, rate: float, hold: bool) -> None:
    released = asyncio.Event()
    if not hold:
        released.set()

    async def release_on_stdin() -> None:
        await asyncio.to_thread(sys.stdin.readline)
        released.set()

    async def handle(connection: ServerConnection) -> None:
        cursor = _cursor(connection.request.path if connection.request else "")
        index = 0 if cursor is None else stream.first_index_at(cursor)
        paced_from: float | None = None
        paced_sent = 0
        with contextlib.suppress(ConnectionClosed):
            while stream.frames is None or index < stream.frames:
                if index >= stream.world.playlists:
                    if not released.is_set():
                        await released.wait()
                    if rate > 0:
                        if paced_from is None:
                            paced_from = time.monotonic()
                        wait = paced_from + paced_sent / rate - time.monotonic()
                        if wait > 0:
                            await asyncio.sleep(wait)
                        paced_sent += 1
                payload = stream.frame(index)
                await connection.send(payload, text=is_utf8(payload))
                index += 1
                if index % YIELD_EVERY == 0:
                    # `send` returns without yielding while the write buffer has room:
                    # without this the loop never reads the socket, the client's
                    # pings go unanswered and it drops the connection after ~40 s.
                    await asyncio.sleep(0)
            await connection.wait_closed()  # the stream ended: idle, like a quiet firehose

    holder = asyncio.create_task(release_on_stdin()) if hold else None
    async with serve(handle, HOST, port, max_size=1024 * 1024, compression=None):
        await asyncio.Event().wait()
    if holder is not None:
        holder.cancel()


class IndexedTurbopufferServer(TurbopufferServer):
    """the tests' turbopuffer-speaking server with one shortcut: the two query shapes
    plyr-recs sends (vectors by id; ANN excluding the playlist's own ids) are answered
    from NumPy arrays built once, where the tests' server makes a Python pass over
    every document per query. that pass cost ~200 ms of CPU per recompute at 10,000
    tracks and made the stand-in the bottleneck of every run, while turbopuffer's CPU
    is not the service's. the answers are the same rows (a test compares them); any
    other request goes to the tests' implementation."""

    def __init__(self, port: int, vectors: npt.NDArray[np.float32]) -> None:
        super().__init__(port)
        ids = np.arange(FIRST_TRACK_ID, FIRST_TRACK_ID + len(vectors), dtype=np.int64)
        self.seed(NAMESPACE, dict(zip(ids.tolist(), vectors, strict=True)))
        self._ids = ids
        self._vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._unit = self._vectors / np.linalg.norm(self._vectors, axis=1, keepdims=True)

    def _query(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] | None = None
        if name == NAMESPACE:
            if isinstance(body.get("queries"), list):
                results = [self._ann(query) for query in body["queries"]]
                if all(rows is not None for rows in results):
                    answer = {"results": [{"rows": rows} for rows in results]}
            else:
                rows = self._by_id(body)
                answer = None if rows is None else {"rows": rows}
        if answer is None:
            return super()._query(name, body)
        return {"billing": BILLING, "performance": PERFORMANCE, **answer}

    def _rows_of(self, track_ids: list[int]) -> npt.NDArray[np.int64]:
        rows = np.asarray(track_ids, dtype=np.int64) - FIRST_TRACK_ID
        return rows[(rows >= 0) & (rows < len(self._ids))]

    def _by_id(self, query: dict[str, Any]) -> list[dict[str, Any]] | None:
        filters = query.get("filters")
        if (
            query.get("rank_by") != ["id", "asc"]
            or not _is_id_filter(filters, "In")
            or query.get("include_attributes") != ["vector"]
            or query.get("vector_encoding") != "base64"
        ):
            return None
        assert isinstance(filters, list)
        rows = np.unique(self._rows_of(filters[2]))[: int(query["top_k"])]
        return [
            {"id": int(self._ids[row]), "vector": base64.b64encode(self._vectors[row]).decode()}
            for row in rows
        ]

    def _ann(self, query: object) -> list[dict[str, Any]] | None:
        if not isinstance(query, dict) or set(query) - {
            "rank_by",
            "top_k",
            "distance_metric",
            "filters",
        }:
            return None
        rank_by, filters = query.get("rank_by"), query.get("filters")
        if not (isinstance(rank_by, list) and rank_by[:2] == ["vector", "ANN"]):
            return None
        if query.get("distance_metric", "cosine_distance") != "cosine_distance":
            return None
        if filters is not None and not (
            isinstance(filters, list) and filters[:2] == ["id", "NotIn"]
        ):
            return None
        target = np.asarray(rank_by[2], dtype=np.float32)
        distances = 1.0 - self._unit @ (target / np.linalg.norm(target))
        allowed = np.ones(len(self._ids), dtype=bool)
        if filters is not None:
            allowed[self._rows_of(filters[2])] = False
        candidates = np.flatnonzero(allowed)
        # best first, ties by id (as the tests' server sorts): lexsort's last key leads
        order = candidates[np.lexsort((candidates, distances[candidates]))]
        return [
            {"id": int(self._ids[row]), "$dist": float(distances[row])}
            for row in order[: int(query["top_k"])]
        ]


def _is_id_filter(filters: object, operator: str) -> bool:
    return isinstance(filters, list) and len(filters) == 3 and filters[:2] == ["id", operator]


async def serve_turbopuffer(port: int, world: WorldSpec) -> None:
    server = IndexedTurbopufferServer(port, world.vectors())
    async with server:
        while True:
            await asyncio.sleep(RECORDED_REQUESTS_KEPT_SECONDS)
            server.reset()


async def serve_pds(port: int, records: dict[str, tuple[str, Any]]) -> None:
    server = LoopbackPds(port=port)
    for uri, (cid, value) in records.items():
        server.put(uri, cid, value)
    async with server:
        await asyncio.Event().wait()  # until the driver stops the process


def main(argv: list[str]) -> None:
    role, port = argv[0], int(argv[1])
    if role == "stream":
        stream = StreamSpec.from_json(argv[2])
        asyncio.run(serve_stream(port, stream, float(argv[3]), argv[4] == "1"))
    elif role == "turbopuffer":
        world = WorldSpec(**orjson.loads(argv[2]))
        asyncio.run(serve_turbopuffer(port, world))
    elif role == "pds":
        asyncio.run(serve_pds(port, orjson.loads(argv[2])))
    else:
        raise SystemExit(f"unknown role {role!r}: stream, turbopuffer or pds")


if __name__ == "__main__":
    main(sys.argv[1:])
