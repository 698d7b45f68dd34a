"""`python -m bench api`: the API's cache hits under load, beside the floor of its stack.

what runs: a real redis-server; the API under uvicorn in its own process (one
worker process, the production configuration: `bench.api_server`) on a
generated catalogue with a warm cache; and, in this process, the load
generator: `clients` keep-alive connections over loopback, each sending its
next request as soon as the last one is answered (closed loop).

measured per level, for a few seconds after a short warm-up, as the client
sees it: requests per second, p50, p99.
- floor: a bare route of the same app (uvicorn + FastAPI, nothing else): what
  any endpoint costs on this machine before doing anything.
- hits: GET /playlists/{id}/recommendations on cached playlists, with the
  internal-token auth plyr.fm's backend uses (no DID resolution).
- paced: the hits again, offered at a fixed rate (`--rate`) over 16
  connections; latency counts from when each request was due, so a stall is
  not hidden by the requests it delayed (coordinated omission).
- miss: the request after its cache entry was deleted, one at a time: the
  worker's state names the tracks, the engine runs (an ExactStore of 10,000
  tracks, inside the API's process), the cache is written.

the load generator is a few lines of HTTP/1.1 over asyncio streams, not
httpx: on this machine httpx needs more CPU per request than the server does
and would be the thing measured. both processes share the machine's cores
(and whatever else runs on it): the figures are the API's with its load
generator beside it, not alone.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import redis.asyncio as aioredis
from rich.console import Console
from rich.table import Table

from bench.api_server import FLOOR_ROUTE, INTERNAL_TOKEN, BenchPlaylist, bench_playlists
from bench.loopback.servers import RedisServer, free_port
from engine.cache import cache_key

HOST: Final = "127.0.0.1"
WARMUP_SECONDS: Final = 0.5
START_TIMEOUT_SECONDS: Final = 90.0
PACED_CLIENTS: Final = 16
GOAL_P99_MS: Final = 10.0
GOAL_RPS: Final = 1500.0
GOAL_CLIENTS: Final = 16
HIT: Final = b"x-recommendations-source: hit\r\n"


@dataclass(frozen=True, slots=True)
class Level:
    name: str
    clients: int
    seconds: float
    latencies_ms: list[float]
    failures: int  # not a 200, or (for hits) not answered from the cache

    @property
    def rps(self) -> float:
        return len(self.latencies_ms) / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Connection:
    """one keep-alive HTTP/1.1 connection: GET, read the head, read Content-Length bytes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection(HOST, port))

    async def get(self, request: bytes) -> tuple[int, bytes, bytes]:
        """(status, head, body) of one request written as raw bytes."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.lower().split(b"\r\n"):
            if line.startswith(b"content-length:"):
                length = int(line[15:])
        body = await self.reader.readexactly(length)
        return status, head.lower(), body

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def request_bytes(path: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"host: {HOST}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def hit_request(playlist: BenchPlaylist) -> bytes:
    headers = {"x-internal-token": INTERNAL_TOKEN, "x-viewer-did": playlist.owner_did}
    return request_bytes(f"/playlists/{playlist.playlist_id}/recommendations?limit=3", headers)


def main(
    *,
    levels: list[int],
    seconds: float,
    rate: float = GOAL_RPS,
    playlist_count: int = 200,
    misses: int = 20,
) -> list[Level]:
    console = Console()
    playlists = bench_playlists(playlist_count)
    with tempfile.TemporaryDirectory(prefix="plyr-bench-api-") as directory:
        redis_server = RedisServer(Path(directory) / "redis")
        redis_server.start()
        port = free_port()
        command = [sys.executable, "-m", "bench.api_server"]
        server = subprocess.Popen([*command, str(port), redis_server.url, str(playlist_count)])
        try:
            console.print(
                f"API on {HOST}:{port} (uvicorn, one process), {playlist_count} playlists "
                f"in a warm cache; {seconds:.1f}s per level after {WARMUP_SECONDS}s of warm-up"
            )
            run = _measure(port, redis_server.url, playlists, levels, seconds, rate, misses)
            results, miss_ms = asyncio.run(run)
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            redis_server.stop()
    _report(console, results, miss_ms)
    return results


async def _measure(
    port: int,
    redis_url: str,
    playlists: list[BenchPlaylist],
    levels: list[int],
    seconds: float,
    rate: float,
    misses: int,
) -> tuple[list[Level], list[float]]:
    await _wait_until_serving(port)
    floor = [request_bytes(FLOOR_ROUTE)]
    hits = [hit_request(playlist) for playlist in playlists]
    results = []
    for clients in levels:
        results.append(await _closed_loop("floor", port, floor, clients, seconds))
        results.append(await _closed_loop("hits", port, hits, clients, seconds))
    if rate > 0:
        results.append(await _paced(port, hits, PACED_CLIENTS, seconds, rate))
    return results, await _misses(port, redis_url, playlists[:misses])


async def _wait_until_serving(port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        try:
            connection = await Connection.open(port)
        except OSError:
            # not listening yet: the catalogue and the warm cache come first
            if time.monotonic() > deadline:
                raise TimeoutError("the API did not start") from None
            await asyncio.sleep(0.2)
            continue
        status, _, _ = await connection.get(request_bytes("/health"))
        await connection.close()
        if status == 200:
            return


async def _closed_loop(
    name: str, port: int, requests: list[bytes], clients: int, seconds: float
) -> Level:
    connections = [await Connection.open(port) for _ in range(clients)]
    latencies: list[float] = []
    failures = 0
    measuring_from = time.perf_counter() + WARMUP_SECONDS
    until = measuring_from + seconds

    async def client(index: int) -> None:
        nonlocal failures
        connection, position = connections[index], index
        while (started := time.perf_counter()) < until:
            request = requests[position % len(requests)]
            position += clients
            status, head, _ = await connection.get(request)
            if status != 200 or (name == "hits" and HIT not in head):
                failures += 1
            if started >= measuring_from:
                latencies.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(client(i) for i in range(clients)))
    for connection in connections:
        await connection.close()
    return Level(name, clients, seconds, latencies, failures)


async def _paced(
    port: int, requests: list[bytes], clients: int, seconds: float, rate: float
) -> Level:
    """`rate` requests/s spread over `clients` connections, each request due at a fixed
    time; latency is measured from when it was due, not from when it could be sent."""
    connections = [await Connection.open(port) for _ in range(clients)]
    latencies: list[float] = []
    failures = 0
    start = time.perf_counter() + 0.05
    measuring_from = start + WARMUP_SECONDS
    total = int((WARMUP_SECONDS + seconds) * rate)

    async def client(index: int) -> None:
        nonlocal failures
        connection = connections[index]
        for sequence in range(index, total, clients):
            due = start + sequence / rate
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            status, head, _ = await connection.get(requests[sequence % len(requests)])
            if status != 200 or HIT not in head:
                failures += 1
            if due >= measuring_from:
                latencies.append((time.perf_counter() - due) * 1000)

    await asyncio.gather(*(client(i) for i in range(clients)))
    for connection in connections:
        await connection.close()
    return Level(f"paced {rate:,.0f}/s", clients, seconds, latencies, failures)


async def _misses(port: int, redis_url: str, playlists: list[BenchPlaylist]) -> list[float]:
    """one request at a time, each after deleting that playlist's cache entry."""
    redis = aioredis.Redis.from_url(redis_url)
    connection = await Connection.open(port)
    timings = []
    try:
        for playlist in playlists:
            await redis.delete(cache_key(playlist.playlist_id, playlist.cid))
            started = time.perf_counter()
            status, head, _ = await connection.get(hit_request(playlist))
            timings.append((time.perf_counter() - started) * 1000)
            if status != 200 or b"x-recommendations-source: computed" not in head:
                raise RuntimeError(f"a miss was not computed: {status} {head!r}")
    finally:
        await connection.close()
        await redis.aclose()
    return timings


def _report(console: Console, results: list[Level], miss_ms: list[float]) -> None:
    table = Table(title="plyr-recs API under load (client-side latency, loopback)")
    for column in ("route", "clients", "requests", "req/s", "p50 ms", "p99 ms", "max ms", "failed"):
        table.add_column(column, justify="left" if column == "route" else "right")
    for level in results:
        table.add_row(
            level.name,
            str(level.clients),
            str(len(level.latencies_ms)),
            f"{level.rps:,.0f}",
            f"{level.percentile(0.50):.2f}",
            f"{level.percentile(0.99):.2f}",
            f"{max(level.latencies_ms, default=float('nan')):.2f}",
            str(level.failures),
        )
    console.print(table)
    if miss_ms:
        console.print(
            f"miss (cache entry deleted; engine inline; cache written): median "
            f"{statistics.median(miss_ms):.1f} ms over {len(miss_ms)} "
            f"(min {min(miss_ms):.1f}, max {max(miss_ms):.1f})"
        )
    for level in results:
        if level.name == "floor" or level.clients != GOAL_CLIENTS:
            continue
        p99 = level.percentile(0.99)
        verdict = "met" if p99 < GOAL_P99_MS else "missed"
        if level.name == "hits":
            throughput = "met" if level.rps >= GOAL_RPS else "missed"
            console.print(
                f"goal, hits at {level.clients} clients: {level.rps:,.0f} req/s "
                f"(>= {GOAL_RPS:,.0f}: {throughput}), p99 {p99:.2f} ms (< {GOAL_P99_MS:.0f}: "
                f"{verdict})"
            )
        else:  # paced: the rate is given, the question is the latency it gets
            console.print(
                f"goal, hits {level.name} over {level.clients} connections: p99 {p99:.2f} ms "
                f"(< {GOAL_P99_MS:.0f}: {verdict})"
            )
