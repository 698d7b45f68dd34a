"""the service as deployed, on loopback: the harness of the load benchmarks and their test.

a real redis-server and PostgreSQL (plyr.fm's schema, the generated rows), the
turbopuffer-speaking server and a generated Jetstream (`bench.load.servers`),
each in a process of its own; then the production commands `plyr-recs jetstream`,
`plyr-recs worker` and `plyr-recs api`, started as fly.toml starts them and
configured by environment variables only. nothing of the service runs in the
driver's process, so what is measured (memory, CPU time, answers) is the production
code in its production shape.

what the harness can see from outside: each process's VmRSS / VmHWM and CPU time
(/proc), the consumer's counters (published in Redis for `plyr-recs status`), the
worker's outcomes (its INFO log line per task), and the cache itself.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Final, Self

import orjson
import redis.asyncio as aioredis

from bench.api import Connection, request_bytes
from bench.load.world import Edit, Mix, StreamSpec, WorldSpec
from bench.loopback.catalog_rows import load_into_postgres
from bench.loopback.plyr_database import plyr_database
from bench.loopback.servers import RedisServer, free_port
from engine.cache import cache_key
from jetstream.status import read_status

HOST: Final = "127.0.0.1"
INTERNAL_TOKEN: Final = "load-internal-token"
LIST_COLLECTION: Final = "fm.plyr.list"
START_TIMEOUT_SECONDS: Final = 60.0
STOP_TIMEOUT_SECONDS: Final = 15.0
# the worker's line per task (worker.tasks.playlist): "recompute <uri> cid=<cid>: <outcome> in ..."
OUTCOME_LINE: Final = re.compile(rb"recompute \S+ cid=\S+: ([a-z_]+) in ")
DROPPED_LINE: Final = re.compile(rb"dropping (?:recompute of )?\S+")
TRACEBACK: Final = b"Traceback (most recent call last)"
# docket logs every retry with its exception, including the worker's deliberate
# `retry.after(...)` while plyr.fm has not ingested a playlist yet: not an error.
FORCED_RETRY: Final = b"\ndocket.dependencies._retry.ForcedRetry"
# and the per-playlist lock's: an edit whose run starts while the previous run of
# that playlist still holds the lock waits by a retry (worker.store.lock),
# which happens whenever a compute outlasts the settle delay (a loaded machine).
PLAYLIST_BUSY: Final = b"\nworker.store.lock.PlaylistBusy"


@dataclass(frozen=True)
class StackOptions:
    world: WorldSpec = field(default_factory=WorldSpec)
    mix: Mix = field(default_factory=Mix)
    frames: int | None = None  # None: the stream never ends
    rate: float = 0.0  # frames/s after the creates (0: as fast as the consumer reads)
    hold_edits: bool = False  # the stream waits for `release_edits()` after the creates
    api: bool = True
    worker: bool = True
    debounce_seconds: float = 2.0
    playlist_wait_seconds: float = 5.0
    worker_concurrency: int = 10
    extra_env: Mapping[str, str] = field(default_factory=dict)
    keep_logs: bool = False  # leave the processes' logs in `Stack.directory`


@dataclass(frozen=True)
class Memory:
    rss_mb: float
    peak_mb: float  # VmHWM: the most this process has ever held


class ServiceProcess:
    """one child process, its log file, and what /proc says about it."""

    def __init__(
        self, name: str, command: list[str], *, env: Mapping[str, str], cwd: Path, stdin: bool
    ) -> None:
        self.name = name
        self.log_path = cwd / f"{name}.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.final_memory: Memory | None = None
        self.final_cpu_seconds: float | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def memory(self) -> Memory:
        if not self.alive() and self.final_memory is not None:
            return self.final_memory
        fields = _proc_status(self.pid)
        return Memory(fields.get("VmRSS", 0) / 1024, fields.get("VmHWM", 0) / 1024)

    def cpu_seconds(self) -> float:
        """user + system CPU time so far."""
        if not self.alive() and self.final_cpu_seconds is not None:
            return self.final_cpu_seconds
        return cpu_seconds(self.pid)

    def log(self) -> bytes:
        return self.log_path.read_bytes()

    def send_line(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"go\n")
        self.process.stdin.flush()

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after a grace period; the exit code (None if killed)."""
        if self.alive():
            self.final_memory = self.memory()
            self.final_cpu_seconds = self.cpu_seconds()
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                return None
        self._log.close()
        if self.process.stdin is not None:
            self.process.stdin.close()
        return self.process.returncode


def cpu_seconds(pid: int) -> float:
    """user + system CPU time of process `pid` so far (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # the command name (2nd field) may hold spaces: split after its ')'
            after = stat.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    ticks = int(after[11]) + int(after[12])  # utime, stime (fields 14, 15)
    return ticks / os.sysconf("SC_CLK_TCK")


def _proc_status(pid: int) -> dict[str, int]:
    """the kB figures of /proc/<pid>/status (VmRSS, VmHWM, ...)."""
    fields = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                name, _, value = line.partition(":")
                parts = value.split()
                if len(parts) == 2 and parts[1] == "kB":
                    fields[name] = int(parts[0])
    except FileNotFoundError:
        pass
    return fields


def plyr_recs_command() -> list[str]:
    """the console script fly.toml runs, from this environment."""
    script = Path(sys.executable).with_name("plyr-recs")
    return [str(script)] if script.exists() else [sys.executable, "-m", "worker"]


@dataclass
class ConsumerCounts:
    frames: int = 0
    recomputes: int = 0
    forgets: int = 0
    skipped: int = 0
    invalid: int = 0
    store_errors: int = 0
    reconnects: int = 0

    @classmethod
    def of(cls, stats: Mapping[str, str]) -> ConsumerCounts:
        def total(prefix: str) -> int:
            return sum(int(v) for k, v in stats.items() if k.startswith(prefix))

        return cls(
            frames=int(stats.get("frames", 0)),
            recomputes=int(stats.get("recomputes", 0)),
            forgets=int(stats.get("forgets", 0)),
            skipped=total("skipped:"),
            invalid=total("invalid:"),
            store_errors=int(stats.get("store_errors", 0)),
            reconnects=total("reconnects:"),
        )


class Stack:
    """start everything on enter, stop it all (children first) on exit."""

    def __init__(
        self,
        options: StackOptions,
        *,
        redis_url: str | None = None,
        database_dsn: str | None = None,
    ) -> None:
        """`redis_url` / `database_dsn` (a database with plyr.fm's schema, empty) reuse
        servers the caller runs; without them the stack starts its own."""
        self.options = options
        self.stream = StreamSpec(
            world=options.world,
            # a day ago: the stream is history the consumer catches up on, and its
            # clock never runs ahead of ours (the cursor refuses the future)
            start_time_us=int((time.time() - 86_400) * 1_000_000),
            mix=options.mix,
            frames=options.frames,
        )
        self.redis_url = redis_url or ""
        self.database_dsn = database_dsn or ""
        self.api_port = free_port()
        self.docket_name = f"load-{uuid.uuid4().hex[:8]}"
        self.processes: dict[str, ServiceProcess] = {}
        self.redis: aioredis.Redis | None = None
        self.redis_pid: int | None = None
        self.exit_codes: dict[str, int | None] = {}
        self._stack = AsyncExitStack()
        self.directory = Path(tempfile.mkdtemp(prefix="plyr-load-"))

    # --- lifecycle -------------------------------------------------------------------

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
        # the service first (it flushes to Redis on SIGTERM), then what it talks to
        for name in ("jetstream", "api", "worker", "stream", "turbopuffer"):
            process = self.processes.get(name)
            if process is not None:
                self.exit_codes[name] = await asyncio.to_thread(process.stop)
        await self._stack.aclose()
        if exc_type is None and not self.options.keep_logs:
            shutil.rmtree(self.directory, ignore_errors=True)

    async def _start(self) -> None:
        options = self.options
        if not self.redis_url:
            redis_server = RedisServer(self.directory / "redis")
            redis_server.start()
            self._stack.callback(redis_server.stop)
            self.redis_url = redis_server.url
            assert redis_server.process is not None
            self.redis_pid = redis_server.process.pid
        self.redis = aioredis.Redis.from_url(self.redis_url)
        self._stack.push_async_callback(self.redis.aclose)
        if not self.database_dsn:
            self.database_dsn = await plyr_database(self._stack)
        await load_into_postgres(self.database_dsn, options.world.catalog_rows())

        turbopuffer_port, stream_port = free_port(), free_port()
        world_json = orjson.dumps(asdict(options.world)).decode()
        servers = [sys.executable, "-m", "bench.load.servers"]
        self._spawn("turbopuffer", [*servers, "turbopuffer", str(turbopuffer_port), world_json])
        stream_args = [str(stream_port), self.stream.to_json().decode(), str(options.rate)]
        hold = "1" if options.hold_edits else "0"
        self._spawn("stream", [*servers, "stream", *stream_args, hold], stdin=options.hold_edits)
        await self._wait_for_port("turbopuffer", turbopuffer_port)
        await self._wait_for_port("stream", stream_port)

        env = self._service_env(turbopuffer_port, stream_port)
        command = plyr_recs_command()
        if options.worker:
            self._spawn("worker", [*command, "worker"], env=env)
        if options.api:
            self._spawn("api", [*command, "api"], env=env)
            await self._wait_for_health()
        self._spawn("jetstream", [*command, "jetstream"], env=env)

    def _service_env(self, turbopuffer_port: int, stream_port: int) -> dict[str, str]:
        options = self.options
        env = {
            key: value
            for key, value in os.environ.items()
            if key in ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
        }
        env.update(
            {
                "REDIS_URL": self.redis_url,
                "DOCKET_URL": self.redis_url,
                "DOCKET_NAME": self.docket_name,
                "DATABASE_URL": self.database_dsn,
                "TURBOPUFFER_API_KEY": "load-test-key",
                "TURBOPUFFER_BASE_URL": f"http://{HOST}:{turbopuffer_port}",
                "JETSTREAM_URL": f"ws://{HOST}:{stream_port}/subscribe",
                "INTERNAL_API_TOKEN": INTERNAL_TOKEN,
                "API_HOST": HOST,
                "API_PORT": str(self.api_port),
                "DEBOUNCE_SECONDS": str(options.debounce_seconds),
                "PLAYLIST_WAIT_SECONDS": str(options.playlist_wait_seconds),
                "WORKER_CONCURRENCY": str(options.worker_concurrency),
                "JETSTREAM_STATS_SECONDS": "1",
                "LOG_LEVEL": "INFO",
                "OPENBLAS_NUM_THREADS": "1",  # as fly.toml sets it
                "PYTHONUNBUFFERED": "1",  # log lines reach the file as they are written
            }
        )
        env.update(options.extra_env)
        return env

    def _spawn(
        self,
        name: str,
        command: list[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: bool = False,
    ) -> ServiceProcess:
        if env is None:
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        process = ServiceProcess(name, command, env=env, cwd=self.directory, stdin=stdin)
        self.processes[name] = process
        return process

    async def _wait_for_port(self, name: str, port: int) -> None:
        async def ready() -> bool:
            try:
                _, writer = await asyncio.open_connection(HOST, port)
            except OSError:
                return False
            writer.close()
            await writer.wait_closed()
            return True

        await self._wait(name, ready, f"{name} to listen on {port}")

    async def _wait_for_health(self) -> None:
        async def healthy() -> bool:
            try:
                connection = await Connection.open(self.api_port)
            except OSError:
                return False
            try:
                status, _, _ = await connection.get(request_bytes("/health"))
            finally:
                await connection.close()
            return status == 200

        await self._wait("api", healthy, "the API's /health")

    async def _wait(self, name: str, predicate: Callable[[], Awaitable[bool]], what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not await predicate():
            process = self.processes[name]
            if not process.alive():
                tail = process.log()[-2000:].decode(errors="replace")
                raise RuntimeError(f"{name} exited: {tail}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            await asyncio.sleep(0.1)

    # --- what the driver does and sees -------------------------------------------------

    def release_edits(self) -> None:
        self.processes["stream"].send_line()

    def service_processes(self) -> list[ServiceProcess]:
        return [self.processes[n] for n in ("api", "worker", "jetstream") if n in self.processes]

    def check_alive(self) -> None:
        for process in self.service_processes():
            if not process.alive():
                tail = process.log()[-3000:].decode(errors="replace")
                raise RuntimeError(f"plyr-recs {process.name} exited:\n{tail}")

    async def consumer_counts(self) -> ConsumerCounts:
        assert self.redis is not None
        status = await read_status(self.redis, LIST_COLLECTION)
        return ConsumerCounts.of(status.stats)

    async def queue_depth(self) -> tuple[int, int]:
        """(entries in docket's stream: due tasks, superseded ones included; tasks
        scheduled for later), read from docket's own keys."""
        assert self.redis is not None
        async with self.redis.pipeline(transaction=False) as pipeline:
            pipeline.xlen(f"{self.docket_name}:stream")
            pipeline.zcard(f"{self.docket_name}:queue")
            stream, scheduled = await pipeline.execute()
        return int(stream), int(scheduled)

    def worker_outcomes(self) -> Counter[str]:
        """the worker's tasks so far, by outcome (computed, reused, already_cached,
        unavailable, dropped), from its log."""
        if "worker" not in self.processes:
            return Counter()
        log = self.processes["worker"].log()
        outcomes = Counter(match.decode() for match in OUTCOME_LINE.findall(log))
        outcomes["dropped"] = len(DROPPED_LINE.findall(log))
        return outcomes

    def unexpected_errors(self) -> dict[str, int]:
        """tracebacks each service process has logged, beyond docket's log of a
        deliberate retry (a crash, an unhandled error, or a retried fault)."""
        errors = {}
        for process in self.service_processes():
            log = process.log()
            deliberate = log.count(FORCED_RETRY) + log.count(PLAYLIST_BUSY)
            errors[process.name] = log.count(TRACEBACK) - deliberate
        return errors

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time so far of every process the stack started (redis-server too,
        when it is the stack's own)."""
        seconds = {name: process.cpu_seconds() for name, process in self.processes.items()}
        if self.redis_pid is not None:
            seconds["redis-server"] = cpu_seconds(self.redis_pid)
        return seconds

    async def cached(self, versions: Iterable[Edit]) -> int:
        """how many of these (playlist, version)s have a cache entry."""
        assert self.redis is not None
        keys = [cache_key(edit.playlist.playlist_id, edit.cid) for edit in versions]
        if not keys:
            return 0
        found = 0
        for start in range(0, len(keys), 1000):
            found += sum(1 for v in await self.redis.mget(keys[start : start + 1000]) if v)
        return found

    async def wait_cached(self, versions: list[Edit], *, within: float, what: str) -> float:
        """wait until every version is cached; the seconds it took."""
        started = time.monotonic()
        while await self.cached(versions) < len(versions):
            self.check_alive()
            if time.monotonic() - started > within:
                missing = len(versions) - await self.cached(versions)
                raise TimeoutError(f"{missing} of {len(versions)} {what} not cached in {within}s")
            await asyncio.sleep(0.1)
        return time.monotonic() - started
