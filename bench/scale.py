"""`python -m bench scale`: a cold deploy of many playlists with 1, 2 and 4 workers.

the journey's deployment (`bench.journey_stack`): PostgreSQL with the world and the
PDS and turbopuffer stand-ins are built once (`JourneyBackends`); each worker count
gets a fresh Redis and a fresh service (`plyr-recs jetstream`, `api`, and that many
`plyr-recs worker`s, each serving its /metrics). for each:

1. the cold deploy: the reconcile loop's first pass warms every live playlist
   (`RECONCILE_MAX_PER_SECOND` raised, so the workers, not the pace, are what is
   measured): seconds to 50 % / 100 % cached; the workers' CPU since ready (/proc)
   and their recompute counters (/metrics); the stand-ins' CPU apart.
2. Redis: every key's `MEMORY USAGE` by family, and `INFO memory`'s used_memory
   delta, per cached playlist.
3. one reconcile pass with everything warm (`request_pass`, as the consumer asks
   one): its seconds, the playlists it listed, the rows of `playlists` PostgreSQL
   read (pg_stat_user_tables), Redis round trips (read events) and commands (INFO,
   net of the idle rate measured just before: docket's polling and the loops run
   all the while), PDS reads (the stand-in's count).

then the table, the issue's goals beside the figures and the extrapolation to 1 M
playlists (`bench.scale_report`). every figure depends on this machine: the
recomputes per worker-CPU-second are compared with the first worker count's, run
in the same invocation. the host's speed changes by the hour: the yardstick
(`bench.yardstick`), sampled every few seconds while the deploys run, puts the
CPU per recompute at one reference speed too.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import asyncpg
import httpx
import orjson
from docket import Docket
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench.journey import cached_count, live_of
from bench.journey_stack import JourneyBackends, JourneyOptions, JourneyStack
from bench.load.stack import cpu_seconds
from bench.load.world import WorldSpec
from bench.scale_redis import RedisCounters, counters, memory_by_family, used_memory
from bench.scale_report import (
    PassFigures,
    RunFigures,
    extrapolate,
    extrapolation_lines,
    goal_lines,
    runs_table,
)
from bench.yardstick import Sampler as YardstickSampler
from worker.store.reconcile_state import ReconcileState
from worker.tasks.reconcile import request_pass

OUTCOME: Final = re.compile(r'^plyr_recs_worker_outcomes_total\{kind="([a-z_]+:[a-z_:]+)"\} (\S+)$')
POLL_SECONDS: Final = 0.5
# PostgreSQL 15+ flushes a backend's statistics when it goes idle, at most every
# second and at the latest 10 s after: waited before each read of pg_stat_user_tables
PG_STATS_SETTLE_SECONDS: Final = 11.0
IDLE_WINDOW_SECONDS: Final = 10.0  # the background rate netted out of the pass


@dataclass(frozen=True)
class ScaleOptions:
    playlists: int = 20_000
    workers: tuple[int, ...] = (1, 2, 4)
    concurrency: int = 6
    pace: float = 1_000.0  # RECONCILE_MAX_PER_SECOND of the cold deploy
    pds_hosts: int = 8
    timeout_seconds: float = 1_800.0
    pass_timeout_seconds: float = 300.0
    # the idle baseline's length before the warm pass (shorter: a noisier idle rate)
    idle_window_seconds: float = IDLE_WINDOW_SECONDS
    extra_env: tuple[tuple[str, str], ...] = ()  # more settings for the service


def worker_names(stack: JourneyStack) -> list[str]:
    return [name for name in stack.processes if name.startswith("worker")]


def cpu_since_ready(stack: JourneyStack, names: Sequence[str]) -> float:
    return sum(stack.processes[n].cpu_seconds() - stack.cpu_at_ready.get(n, 0.0) for n in names)


def parse_outcomes(text: str) -> Counter[str]:
    """the outcome counters of one worker's /metrics (recompute:<outcome>, retried:...)."""
    found: Counter[str] = Counter()
    for line in text.splitlines():
        match = OUTCOME.match(line)
        if match:
            found[match.group(1)] += int(float(match.group(2)))
    return found


async def outcomes(stack: JourneyStack) -> Counter[str]:
    total: Counter[str] = Counter()
    async with httpx.AsyncClient(timeout=10) as client:
        for port in stack.metrics_ports.values():
            answer = await client.get(f"http://127.0.0.1:{port}/metrics")
            answer.raise_for_status()
            total.update(parse_outcomes(answer.text))
    return total


async def pds_reads(backends: JourneyBackends) -> int:
    """requests the PDS stand-in answered so far: getRecord and listRecords (the pass
    lists an owner's records when it wants several of them, `worker.identity.pds_lists`)."""
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.get(f"{backends.pds_url()}/_bench/requests")
        answer.raise_for_status()
        return sum(int(n) for n in answer.json().values())


async def playlist_rows_read(dsn: str) -> int:
    """rows of `playlists` read so far (sequential and index scans): the pass's table,
    which nothing else reads while the cache is warm (the withdrawal round, every
    second, reads `tracks` and `artists`)."""
    connection = await asyncpg.connect(dsn)
    try:
        value = await connection.fetchval(
            "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)"
            " FROM pg_stat_user_tables WHERE relname = 'playlists'"
        )
    finally:
        await connection.close()
    return int(value or 0)


async def wait_warm(
    stack: JourneyStack, versions: dict[str, str], progress: Progress, limit_seconds: float
) -> tuple[float, float]:
    """seconds from the service's start until 50 % and 100 % of `versions` are cached."""
    task = progress.add_task(f"warming with {stack.options.workers} workers", total=len(versions))
    half = None
    while True:
        stack.check_alive()
        found = await cached_count(stack, versions)
        elapsed = time.monotonic() - stack.service_started_at
        progress.update(task, completed=found)
        if half is None and found * 2 >= len(versions):
            half = elapsed
        if found >= len(versions):
            assert half is not None
            progress.remove_task(task)
            return half, elapsed
        if elapsed > limit_seconds:
            raise TimeoutError(f"{found} of {len(versions)} warm after {elapsed:.0f}s")
        await asyncio.sleep(POLL_SECONDS)


async def wait_queue_drained(stack: JourneyStack, limit_seconds: float) -> None:
    """until docket's stream holds no task (duplicates still running finish)."""
    assert stack.redis is not None
    deadline = time.monotonic() + limit_seconds
    while time.monotonic() < deadline:
        if not await stack.redis.xlen(f"{stack.docket_name}:stream"):
            return
        await asyncio.sleep(POLL_SECONDS)


@dataclass
class Snapshot:
    at: float
    redis: RedisCounters
    pds: int
    workers_cpu: float


async def snapshot(stack: JourneyStack) -> Snapshot:
    assert stack.redis is not None
    return Snapshot(
        time.monotonic(),
        await counters(stack.redis),
        await pds_reads(stack.backends),
        cpu_since_ready(stack, worker_names(stack)),
    )


async def warm_pass(
    stack: JourneyStack,
    progress: Progress,
    limit_seconds: float,
    idle_window_seconds: float = IDLE_WINDOW_SECONDS,
) -> PassFigures:
    """one reconcile pass requested now, everything cached; its figures net of idle
    (the idle rate measured over `idle_window_seconds` just before)."""
    assert stack.redis is not None
    assert stack.redis_server is not None
    task = progress.add_task("warm pass: idle baseline", total=None)
    state = ReconcileState(stack.redis, run="loop", position_ttl_seconds=1)
    async with Docket(name=stack.docket_name, url=stack.redis_server.url) as docket:
        await asyncio.sleep(PG_STATS_SETTLE_SECONDS)  # the warm-up's statistics land
        idle_start = await snapshot(stack)
        await asyncio.sleep(idle_window_seconds)
        rows_before = await playlist_rows_read(stack.database_dsn)
        before = await snapshot(stack)
        idle_seconds = before.at - idle_start.at
        idle = before.redis.minus(idle_start.redis)
        progress.update(task, description="warm pass: running")
        requested = time.time()
        await request_pass(docket)
        while True:
            stack.check_alive()
            last = await state.last()
            if last is not None and last.started_at >= requested - 1.0:
                break
            if time.time() - requested > limit_seconds:
                raise TimeoutError("the requested reconcile pass did not finish")
            await asyncio.sleep(0.1)
        wall = time.time() - requested
        after = await snapshot(stack)
        progress.update(task, description="warm pass: PostgreSQL's statistics")
        await asyncio.sleep(PG_STATS_SETTLE_SECONDS)
        rows_after = await playlist_rows_read(stack.database_dsn)
    progress.remove_task(task)
    window = after.at - before.at
    spent = after.redis.minus(before.redis)
    return PassFigures(
        seconds=last.seconds or 0.0,
        wall_seconds=wall,
        listed=last.listed,
        counts=dict(last.counts),
        pg_rows=rows_after - rows_before,
        redis_commands=round(spent.commands - idle.commands / idle_seconds * window),
        redis_reads=round(spent.reads - idle.reads / idle_seconds * window),
        redis_idle_reads_per_second=idle.reads / idle_seconds,
        worker_idle_cpu_per_second=(before.workers_cpu - idle_start.workers_cpu) / idle_seconds,
        pds_reads=after.pds - before.pds,
        worker_cpu_seconds=after.workers_cpu - before.workers_cpu,
    )


async def one_run(
    backends: JourneyBackends,
    world: WorldSpec,
    workers: int,
    options: ScaleOptions,
    progress: Progress,
    console: Console,
) -> RunFigures:
    settings = {
        "WORKER_CONCURRENCY": str(options.concurrency),
        "RECONCILE_MAX_PER_SECOND": f"{options.pace:g}",
        "RECONCILE_INTERVAL_SECONDS": "3600",  # one pass warms; the next is requested
        **dict(options.extra_env),
    }
    stack_options = JourneyOptions(
        world=world,
        workers=workers,
        worker_concurrency=options.concurrency,
        pds_hosts=options.pds_hosts,
        extra_env={k: v for k, v in settings.items() if k != "WORKER_CONCURRENCY"},
        worker_metrics=True,
    )
    live = live_of(world)
    versions = {p.playlist_id: p.first_cid for p in live}
    pds_before = await pds_reads(backends)
    async with JourneyStack(stack_options, backends) as stack:
        ready = time.monotonic() - stack.service_started_at  # start-up: imports, connections
        assert stack.redis is not None
        assert stack.redis_server is not None
        memory_at_start = await used_memory(stack.redis)
        redis_pid = stack.redis_server.process.pid if stack.redis_server.process else 0
        redis_cpu_at_ready = cpu_seconds(redis_pid)
        half, full = await wait_warm(stack, versions, progress, options.timeout_seconds)
        names = worker_names(stack)
        worker_cpu = cpu_since_ready(stack, names)
        service_cpu = cpu_since_ready(stack, [*names, "api", "jetstream"])
        stand_in_cpu = cpu_since_ready(stack, ["pds", "turbopuffer"])
        redis_cpu = cpu_seconds(redis_pid) - redis_cpu_at_ready
        counted = await outcomes(stack)
        pds_warm = await pds_reads(backends) - pds_before
        await wait_queue_drained(stack, options.timeout_seconds)
        memory = await memory_by_family(stack.redis, stack.docket_name)
        memory_delta = await used_memory(stack.redis) - memory_at_start
        cached = await cached_count(stack, versions)
        figures = RunFigures(
            workers=workers,
            live=len(live),
            cached=cached,
            ready_seconds=ready,
            half_seconds=half,
            full_seconds=full,
            worker_cpu_seconds=worker_cpu,
            service_cpu_seconds=service_cpu,
            stand_in_cpu_seconds=stand_in_cpu,
            redis_cpu_seconds=redis_cpu,
            outcomes=dict(counted),
            pds_reads=pds_warm,
            memory=memory,
            used_memory_delta=memory_delta,
            settings=settings,
        )
        console.print(
            f"{workers} worker(s): {cached:,}/{len(live):,} warm in {full:.1f} s, "
            f"{figures.recomputes:,} recomputes, {worker_cpu:.1f} worker CPU s"
        )
        figures.warm_pass = await warm_pass(
            stack, progress, options.pass_timeout_seconds, options.idle_window_seconds
        )
        console.print(
            f"  warm pass: {figures.warm_pass.seconds:.2f} s over {figures.warm_pass.listed:,}"
        )
    return figures


async def run(options: ScaleOptions, console: Console) -> list[RunFigures]:
    world = WorldSpec(playlists=options.playlists)
    backend_options = JourneyOptions(world=world, pds_hosts=options.pds_hosts)
    runs = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        setup = progress.add_task(f"PostgreSQL with {options.playlists:,} playlists", total=None)
        async with JourneyBackends(backend_options) as backends:
            progress.remove_task(setup)
            # the host's speed under the same conditions as the deploys (bench.yardstick)
            async with YardstickSampler() as sampler:
                for workers in options.workers:
                    runs.append(await one_run(backends, world, workers, options, progress, console))
    host = sampler.host()
    console.print(host.line())
    for figures in runs:
        figures.host = host
    return runs


def main(options: ScaleOptions, *, json_path: Path | None = None) -> None:
    console = Console()
    runs = asyncio.run(run(options, console))
    console.print(runs_table(runs))
    for line in goal_lines(runs):
        console.print(line)
    last = runs[-1]
    for line in extrapolation_lines(last, extrapolate(last, max_per_second=50)):
        console.print(line)
    if json_path is not None:
        json_path.write_bytes(orjson.dumps([r.to_json() for r in runs], option=orjson.OPT_INDENT_2))
