"""the two stand-ins the load benchmarks run in processes of their own.

    python -m benchmarks.load_servers stream PORT STREAM_SPEC_JSON RATE HOLD
    python -m benchmarks.load_servers turbopuffer PORT WORLD_SPEC_JSON

`stream` is a Jetstream-compatible `/subscribe` endpoint that builds frame i when it is
due (`StreamSpec.frame`), so it holds nothing however long it runs. it honours
`cursor` (frames with time_us >= cursor) and, like a host that ignores
`wantedCollections`, sends every frame of the mix. the creates of the known
playlists go as fast as the consumer reads them; what follows is sent at `RATE`
frames per second (0: as fast as read), and with HOLD=1 only once a line arrives on
stdin, so the driver decides when the edits start.

`turbopuffer` is the tests' turbopuffer-speaking server seeded with the world's
vectors. it records every request for the tests' assertions; here nobody reads them,
so they are dropped every few seconds (a long run would otherwise grow without end).

both run apart from the processes measured, so their CPU and memory are not the
service's (the driver reports every process's CPU time separately).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from typing import Final
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from benchmarks.load_world import FIRST_TRACK_ID, StreamSpec, WorldSpec

HOST: Final = "127.0.0.1"
NAMESPACE: Final = "plyr-tracks"
RECORDED_REQUESTS_KEPT_SECONDS: Final = 5.0
YIELD_EVERY: Final = 16  # frames sent between two turns of the event loop


def _cursor(path: str) -> int | None:
    values = parse_qs(urlsplit(path).query).get("cursor")
    if not values:
        return None
    cursor = int(values[-1])
    return cursor if cursor >= 0 else None


def _is_utf8(payload: bytes) -> bool:
    try:
        payload.decode()
    except UnicodeDecodeError:
        return False
    return True


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
                await connection.send(payload, text=_is_utf8(payload))
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


async def serve_turbopuffer(port: int, world: WorldSpec) -> None:
    from tests.support.turbopuffer_server import TurbopufferServer

    vectors = world.vectors()
    server = TurbopufferServer(port)
    server.seed(NAMESPACE, {FIRST_TRACK_ID + row: vector for row, vector in enumerate(vectors)})
    del vectors
    async with server:
        while True:
            await asyncio.sleep(RECORDED_REQUESTS_KEPT_SECONDS)
            server.reset()


def main(argv: list[str]) -> None:
    role, port = argv[0], int(argv[1])
    if role == "stream":
        stream = StreamSpec.from_json(argv[2])
        asyncio.run(serve_stream(port, stream, float(argv[3]), argv[4] == "1"))
    elif role == "turbopuffer":
        world = WorldSpec(**orjson.loads(argv[2]))
        asyncio.run(serve_turbopuffer(port, world))
    else:
        raise SystemExit(f"unknown role {role!r}: stream or turbopuffer")


if __name__ == "__main__":
    main(sys.argv[1:])
