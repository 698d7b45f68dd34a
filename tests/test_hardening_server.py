"""the API's server against raw sockets (issue 16): idle connections, slow headers,
huge and countless headers. the server is uvicorn as `server_config` sets it up,
on loopback, over a tiny app (the routes are not what is tested here)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
import uvicorn
from fastapi import FastAPI

from bench.loopback.servers import RedisServer
from engine.memory_catalog import InMemoryCatalog
from engine.ports import Catalog, CatalogUnavailableError
from tests.support.api_world import (
    INTERNAL_TOKEN,
    PUBLIC_ID,
    built_world,
    internal,
    running_api,
)
from tests.support.jetstream_world import eventually
from tests.support.world import sample_store
from worker.api.app import server_config
from worker.api.http_guard import (
    MAX_CONNECTIONS,
    MAX_HEADER_BYTES,
    MAX_HEADERS,
    GuardedHttpProtocol,
)


class Served:
    def __init__(self, server: uvicorn.Server, port: int, app_calls: list[str]) -> None:
        self.server = server
        self.port = port
        self.app_calls = app_calls

    @property
    def connections(self) -> int:
        return len(self.server.server_state.connections)

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)

    async def request(self, head: bytes) -> bytes:
        """one request on a new connection; the whole answer (the server closes)."""
        reader, writer = await self.open()
        try:
            writer.write(head)
            await writer.drain()
        except ConnectionError:
            pass  # refused mid-way: the server's answer is still in the socket
        try:
            return await asyncio.wait_for(reader.read(65536), 5)
        finally:
            writer.close()


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    app = FastAPI()
    calls: list[str] = []

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        calls.append("ping")
        return {"ok": True}

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(server_config(app, host="127.0.0.1", port=port))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await eventually(lambda: server.started)
    yield Served(server, port, calls)
    server.should_exit = True
    await asyncio.wait_for(task, 10)
    sock.close()


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """the server closed this connection without a word (EOF, or a reset on our write)."""
    try:
        return await asyncio.wait_for(reader.read(100), 5) == b""
    except ConnectionError:
        return True


def ping(*headers: bytes, close: bool = True) -> bytes:
    lines = [b"GET /ping HTTP/1.1", b"host: api.test", *headers]
    if close:
        lines.append(b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def test_idle_connections_past_the_bound_are_shed_not_the_client_with_work(
    served: Served,
) -> None:
    """before: 1,001 connections sending nothing made every client get a 503."""
    idle = [await served.open() for _ in range(MAX_CONNECTIONS + 1)]
    try:
        await eventually(lambda: served.connections >= MAX_CONNECTIONS)
        answer = await served.request(ping())
        assert answer.startswith(b"HTTP/1.1 200"), answer[:80]
        assert served.connections <= MAX_CONNECTIONS
        # the oldest idle ones were closed, and said nothing (no request to answer)
        first_reader, _ = idle[0]
        assert await closed_by_server(first_reader)
    finally:
        for _, writer in idle:
            writer.close()


async def test_a_connection_that_never_finishes_its_headers_is_closed(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """before: an idle connection was still open after 90 s (and a slowloris as long)."""
    monkeypatch.setattr(GuardedHttpProtocol, "header_timeout_seconds", 0.3)
    silent_reader, silent = await served.open()
    slow_reader, slow = await served.open()
    slow.write(b"GET /ping HTTP/1.1\r\nhost: api.test\r\n")
    try:
        for _ in range(20):  # a byte every 50 ms: never a whole request
            try:
                slow.write(b"x")
                await slow.drain()
            except ConnectionError:
                break  # closed by the server: what this test wants
            await asyncio.sleep(0.05)
        assert await closed_by_server(silent_reader)
        assert await closed_by_server(slow_reader)
        assert served.app_calls == []
    finally:
        silent.close()
        slow.close()


async def test_keep_alive_requests_each_get_a_fresh_header_budget(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(GuardedHttpProtocol, "header_timeout_seconds", 0.5)
    reader, writer = await served.open()
    try:
        for _ in range(3):
            writer.write(ping(b"x-pad: " + b"a" * (MAX_HEADER_BYTES // 2), close=False))
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200")
            await asyncio.wait_for(reader.readuntil(b"}"), 5)
            await asyncio.sleep(0.2)  # idle, within the budget
    finally:
        writer.close()
    assert served.app_calls == ["ping"] * 3


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([b"x-big: " + b"a" * (20 * 1024 * 1024)], id="a-20-MiB-value"),
        pytest.param([b"x-big: " + b"a" * (MAX_HEADER_BYTES + 1)], id="just-past-the-bytes"),
        pytest.param([b"x-h%d: 1" % n for n in range(400_000)], id="400000-headers"),
        pytest.param([b"x-h%d: 1" % n for n in range(MAX_HEADERS + 1)], id="just-past-the-count"),
    ],
)
async def test_headers_past_their_bounds_are_a_431_before_the_app(
    served: Served, headers: list[bytes]
) -> None:
    """before: a 20 MiB value was accepted; 400,000 headers cost ~0.65 s of the loop."""
    answer = await served.request(ping(*headers))
    assert answer.startswith(b"HTTP/1.1 431"), answer[:80]
    assert served.app_calls == []
    assert (await served.request(ping())).startswith(b"HTTP/1.1 200")


async def test_headers_within_the_bounds_are_served(served: Served) -> None:
    many = [b"x-h%d: %s" % (n, b"v" * 100) for n in range(MAX_HEADERS - 3)]
    answer = await served.request(ping(*many))
    assert answer.startswith(b"HTTP/1.1 200"), answer[:80]


# --- /health under load -------------------------------------------------------------------


class CountingCatalog:
    """the sample catalogue, each read taking a while (a database 50 ms away), counted."""

    def __init__(self, inner: Catalog) -> None:
        self.inner = inner
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def get_playlist(self, playlist_id: str) -> Any:
        self.reads += 1
        await asyncio.sleep(0.05)
        return await self.inner.get_playlist(playlist_id)


async def test_health_checks_the_database_once_for_any_number_of_callers(
    redis_client: aioredis.Redis,
) -> None:
    """before: every /health call ran a PostgreSQL query, unauthenticated: 32 callers
    took the pool from everyone, 128 made /health itself say `catalog: down`."""
    async with built_world() as world:
        catalog = CountingCatalog(InMemoryCatalog.from_json(world.catalog_json()))
        async with running_api(world, redis_client, store=sample_store(), catalog=catalog) as api:
            reports = await asyncio.gather(*(api.client.get("/health") for _ in range(128)))
            live = await api.client.get("/health/live")
            ready = await api.client.get("/health/ready")
            head = await api.client.head("/health")
    assert {report.status_code for report in reports} == {200}
    assert {report.json()["catalog"] for report in reports} == {"ok"}
    assert catalog.reads == 1  # one shared check (ready reused it: under a second old)
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert ready.status_code == 200
    assert head.status_code == 200  # before: 405


class DownCatalog(CountingCatalog):
    async def get_playlist(self, playlist_id: str) -> Any:
        self.reads += 1
        raise CatalogUnavailableError("the database is down")


async def test_readiness_fails_only_when_nothing_can_be_served(
    redis_client: aioredis.Redis, redis_server: RedisServer
) -> None:
    async with built_world() as world:
        catalog = DownCatalog(InMemoryCatalog.from_json(world.catalog_json()))
        async with running_api(world, redis_client, store=sample_store(), catalog=catalog) as api:
            with_cache = await api.client.get("/health/ready")  # the cache still answers
            api.app.state.api.health.max_age_seconds = 0.0  # no reuse: see the next state
            redis_server.stop()
            try:
                without = await api.client.get("/health/ready")
                live = await api.client.get("/health/live")
            finally:
                redis_server.start()
    assert with_cache.status_code == 200
    assert (with_cache.json()["catalog"], with_cache.json()["redis"]) == ("down", "ok")
    assert without.status_code == 503
    assert (without.json()["catalog"], without.json()["redis"]) == ("down", "down")
    assert live.status_code == 200


# --- the small ones ---------------------------------------------------------------------------


async def test_the_small_ones(redis_client: aioredis.Redis) -> None:
    """a trailing slash was a 307 whose Location came from the Host header; a repeated
    `limit` silently took the last; an internal token with a trailing space was refused."""
    async with (
        built_world() as world,
        running_api(world, redis_client, store=sample_store()) as api,
    ):
        slashed = await api.client.get("/health/", headers={"host": "evil.example"})
        twice = await api.client.get(
            f"/playlists/{PUBLIC_ID}/recommendations?limit=3&limit=10",
            headers=internal(world.alice.did),
        )
        spaced = await api.get(
            PUBLIC_ID, {**internal(world.alice.did), "X-Internal-Token": INTERNAL_TOKEN + " "}
        )
        inside = await api.get(
            PUBLIC_ID,
            {
                **internal(world.alice.did),
                "X-Internal-Token": INTERNAL_TOKEN[:4] + " " + INTERNAL_TOKEN[4:],
            },
        )
    assert slashed.status_code == 404
    assert "location" not in slashed.headers
    assert twice.status_code == 422
    assert twice.json()["detail"][0]["loc"] == ["query", "limit"]
    assert spaced.status_code == 200  # whitespace around a value is not part of it
    assert inside.status_code == 401
