"""the journey benchmark's deployment on loopback: plyr.fm with playlists, an empty Redis.

a real redis-server and PostgreSQL (plyr.fm's schema, `WorldSpec`'s rows, every
owner's `pds_url` at the PDS stand-in), the PDS and turbopuffer stand-ins with a
network's latency (`bench.journey_servers`, processes of their own), a
Jetstream replay server in the driver (silent until the driver appends a commit),
and the production commands: `plyr-recs jetstream`, `plyr-recs worker` x2 and
`plyr-recs api`, configured by environment variables only, as fly.toml does.
reuses the load benchmarks' process handling (`bench.load.stack`).

`JourneyBackends` (PostgreSQL with the world, the stand-ins, the replay server) may be
built once and handed to several stacks in turn, each with its own Redis and service
(the scale benchmark's runs at 1, 2 and 4 workers).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Final, Self

import asyncpg
import httpx
import orjson
import redis.asyncio as aioredis

from bench.api import Connection, request_bytes
from bench.journey_servers import record_value
from bench.load.stack import ServiceProcess, plyr_recs_command
from bench.load.world import WorldSpec
from bench.loopback.catalog_rows import load_into_postgres
from bench.loopback.plyr_database import plyr_database
from bench.loopback.servers import RedisServer, free_port
from jetstream.replay import ReplayServer

HOST: Final = "127.0.0.1"
INTERNAL_TOKEN: Final = "journey-internal-token"
START_TIMEOUT_SECONDS: Final = 90.0


@dataclass(frozen=True)
class JourneyOptions:
    world: WorldSpec = field(default_factory=lambda: WorldSpec(playlists=2_000))
    workers: int = 2
    worker_concurrency: int = 6  # 2 x 6 = 12 turbopuffer requests at most, under its 16
    pds_latency_ms: tuple[float, float] = (30.0, 150.0)
    pds_hosts: int = 8  # owners spread over this many PDS hosts (bsky has ~100)
    turbopuffer_latency_ms: tuple[float, float] = (10.0, 30.0)
    extra_env: Mapping[str, str] = field(default_factory=dict)
    worker_metrics: bool = False  # each worker serves /metrics on a port of its own


class JourneyBackends:
    """what the service talks to besides its Redis: PostgreSQL with the world's rows
    (every owner's `pds_url` at a PDS stand-in), the PDS and turbopuffer stand-ins
    (processes of their own) and the Jetstream replay server. started on enter,
    stopped on exit; one may serve several `JourneyStack`s, one after the other."""

    def __init__(self, options: JourneyOptions) -> None:
        self.options = options
        self.directory = Path(tempfile.mkdtemp(prefix="plyr-journey-"))
        self.pds_ports = [free_port() for _ in range(options.pds_hosts)]
        self.turbopuffer_port = free_port()
        self.processes: dict[str, ServiceProcess] = {}
        self.database_dsn = ""
        self.replay = ReplayServer()
        self._stack = AsyncExitStack()

    def pds_url(self, host: int = 0) -> str:
        return f"http://{HOST}:{self.pds_ports[host % len(self.pds_ports)]}"

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
        for process in self.processes.values():
            await asyncio.to_thread(process.stop)
        await self._stack.aclose()
        if exc_type is None:
            shutil.rmtree(self.directory, ignore_errors=True)

    async def _start(self) -> None:
        options = self.options
        self.database_dsn = await plyr_database(self._stack)
        rows = options.world.catalog_rows()
        for index, artist in enumerate(rows["artists"]):
            artist["pds_url"] = self.pds_url(index)
        await load_into_postgres(self.database_dsn, rows)

        await self._stack.enter_async_context(self.replay)
        world_json = orjson.dumps(asdict(options.world)).decode()
        servers = [sys.executable, "-m", "bench.journey_servers"]
        for name, ports, latency in (
            ("pds", ",".join(map(str, self.pds_ports)), options.pds_latency_ms),
            ("turbopuffer", str(self.turbopuffer_port), options.turbopuffer_latency_ms),
        ):
            low, high = (str(x) for x in latency)
            command = [*servers, name, ports, world_json, low, high]
            self.processes[name] = ServiceProcess(
                name, command, env=os.environ, cwd=self.directory, stdin=False
            )
        for port in self.pds_ports:
            await wait_for_port(self.processes["pds"], port)
        await wait_for_port(self.processes["turbopuffer"], self.turbopuffer_port)


async def wait_for_port(process: ServiceProcess, port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        try:
            _, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            check_process(process, deadline, f"{process.name} to listen")
            await asyncio.sleep(0.1)
            continue
        writer.close()
        await writer.wait_closed()
        return


def check_process(process: ServiceProcess, deadline: float, what: str) -> None:
    if not process.alive():
        raise RuntimeError(
            f"{process.name} exited: {process.log()[-2000:].decode(errors='replace')}"
        )
    if time.monotonic() > deadline:
        raise TimeoutError(f"timed out waiting for {what}")


class JourneyStack:
    """start everything on enter (the service last), stop it all on exit. with
    `backends` handed in, only this stack's Redis and service are started and stopped
    (the backends' options win for the world, the stand-ins and the PDS hosts)."""

    def __init__(self, options: JourneyOptions, backends: JourneyBackends | None = None) -> None:
        self.options = options
        self._own_backends = backends is None
        self.backends = JourneyBackends(options) if backends is None else backends
        self.directory = Path(tempfile.mkdtemp(prefix="plyr-journey-"))
        self.api_port = free_port()
        self.docket_name = f"journey-{uuid.uuid4().hex[:8]}"
        # the stand-ins' processes too (their CPU is read beside the service's)
        self.processes: dict[str, ServiceProcess] = {}
        self.redis: aioredis.Redis | None = None
        self.redis_server: RedisServer | None = None
        self.metrics_ports: dict[str, int] = {}  # worker name -> its METRICS_PORT
        self.service_started_at = 0.0  # monotonic time the service's processes were spawned
        self.cpu_at_ready: dict[str, float] = {}  # CPU seconds of each once all answered
        self._stack = AsyncExitStack()

    @property
    def database_dsn(self) -> str:
        return self.backends.database_dsn

    @property
    def replay(self) -> ReplayServer:
        return self.backends.replay

    @property
    def pds_ports(self) -> list[int]:
        return self.backends.pds_ports

    def pds_url(self, host: int = 0) -> str:
        return self.backends.pds_url(host)

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
        service = [name for name in self.processes if name not in self.backends.processes]
        for name in service:
            await asyncio.to_thread(self.processes[name].stop)
        await self._stack.aclose()
        if exc_type is None:
            shutil.rmtree(self.directory, ignore_errors=True)

    async def _start(self) -> None:
        options = self.options
        if self._own_backends:
            await self._stack.enter_async_context(self.backends)
        self.processes.update(self.backends.processes)
        redis_server = RedisServer(self.directory / "redis")
        redis_server.start()
        self._stack.callback(redis_server.stop)
        self.redis_server = redis_server
        self.redis = aioredis.Redis.from_url(redis_server.url)
        self._stack.push_async_callback(self.redis.aclose)

        env = self._service_env(redis_server.url, self.backends.turbopuffer_port)
        command = plyr_recs_command()
        self.service_started_at = time.monotonic()
        self._spawn("api", [*command, "api"], env)
        self._spawn("jetstream", [*command, "jetstream"], env)
        for index in range(options.workers):
            name = f"worker{index}"
            worker_env = env
            if options.worker_metrics:
                self.metrics_ports[name] = free_port()
                worker_env = {**env, "METRICS_PORT": str(self.metrics_ports[name])}
            self._spawn(name, [*command, "worker"], worker_env)
        await self._wait_for_health()
        # start-up (imports, connections) is not per-recompute work: counted apart
        self.cpu_at_ready = {name: p.cpu_seconds() for name, p in self.processes.items()}

    def _service_env(self, redis_url: str, turbopuffer_port: int) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if key in ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
        }
        env.update(
            {
                "REDIS_URL": redis_url,
                "DOCKET_URL": redis_url,
                "DOCKET_NAME": self.docket_name,
                "DATABASE_URL": self.database_dsn,
                "TURBOPUFFER_API_KEY": "journey-key",
                "TURBOPUFFER_BASE_URL": f"http://{HOST}:{turbopuffer_port}",
                "JETSTREAM_URL": self.replay.url,
                "INTERNAL_API_TOKEN": INTERNAL_TOKEN,
                "API_HOST": HOST,
                "API_PORT": str(self.api_port),
                "WORKER_CONCURRENCY": str(self.options.worker_concurrency),
                "JETSTREAM_STATS_SECONDS": "1",
                "LOG_LEVEL": "WARNING",
                "OPENBLAS_NUM_THREADS": "1",
                "PYTHONUNBUFFERED": "1",
                "PDS_ALLOW_PRIVATE": "true",  # the PDS stand-ins are on loopback
            }
        )
        env.update(self.options.extra_env)
        return env

    def _spawn(self, name: str, command: list[str], env: Mapping[str, str]) -> None:
        self.processes[name] = ServiceProcess(
            name, command, env=env, cwd=self.directory, stdin=False
        )

    async def _wait_for_health(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            try:
                connection = await Connection.open(self.api_port)
                try:
                    status, _, _ = await connection.get(request_bytes("/health"))
                finally:
                    await connection.close()
                if status == 200:
                    return
            except OSError:
                pass
            self._check("api", deadline, "the API's /health")
            await asyncio.sleep(0.1)

    def _check(self, name: str, deadline: float, what: str) -> None:
        check_process(self.processes[name], deadline, what)

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if not process.alive():
                tail = process.log()[-3000:].decode(errors="replace")
                raise RuntimeError(f"{name} exited:\n{tail}")

    # --- what plyr.fm does when its user edits a playlist ---------------------------------

    async def write_record(self, uri: str, cid: str, track_ids: list[int]) -> None:
        """the owner's PDS now holds this version of the record."""
        value = record_value(self.options.world, track_ids)
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                f"{self.pds_url()}/_bench/put",
                content=orjson.dumps({"uri": uri, "cid": cid, "value": value}),
            )
            answer.raise_for_status()

    async def ingest(self, playlist_id: str, cid: str) -> None:
        """plyr.fm's backend ingested the version: its row names the CID."""
        connection = await asyncpg.connect(self.database_dsn)
        try:
            await connection.execute(
                "UPDATE playlists SET atproto_record_cid = $2, updated_at = now() WHERE id = $1",
                playlist_id,
                cid,
            )
        finally:
            await connection.close()

    async def time_pds_read(self, record_uri: str, owner_did: str) -> float:
        """milliseconds one getRecord of the record takes at its owner's PDS stand-in,
        from this driver: the floor of any refetch that must read the record."""
        connection = await asyncpg.connect(self.database_dsn)
        try:
            pds_url = await connection.fetchval(
                "SELECT pds_url FROM artists WHERE did = $1", owner_did
            )
        finally:
            await connection.close()
        _, _, rest = record_uri.removeprefix("at://").partition("/")
        collection, _, rkey = rest.partition("/")
        params = {"repo": owner_did, "collection": collection, "rkey": rkey}
        async with httpx.AsyncClient() as client:
            started = time.perf_counter()
            answer = await client.get(f"{pds_url}/xrpc/com.atproto.repo.getRecord", params=params)
            elapsed = (time.perf_counter() - started) * 1e3
        answer.raise_for_status()
        return elapsed

    def log_tail(self, name: str) -> str:
        return self.processes[name].log()[-3000:].decode(errors="replace")
