"""the API under sustained load on a warm cache while the worker recomputes.

    uv run python -m bench.load.api_load [--seconds 25] [--clients 16] [--edit-rate 10]

what runs (`bench.load.stack`): `plyr-recs api`, `plyr-recs worker` and
`plyr-recs jetstream` as their own processes, on a real redis-server and PostgreSQL,
the turbopuffer-speaking server and a generated Jetstream. the stream first creates
every known playlist (the worker's recomputes of those are the warm cache), then,
once the cache is warm, edits known playlists at `--edit-rate` per second for the
whole window: each edit goes through the consumer, docket and a recompute in the
worker, which writes the new version's cache entry while the API serves the current
ones (the CIDs plyr.fm's rows name).

the baseline: the same load for the same time on the warm cache before the first
edit, the worker and consumer idle; its p99 and req/s are printed beside the loaded
window's, with the ratios.

the load: `--clients` keep-alive connections in this process, each sending its next
request as soon as the last is answered (closed loop), over every known playlist,
with the internal-token auth plyr.fm's backend uses. reported: requests, transport
errors (refused, reset, timed out), statuses, where answers came from, p50/p90/p99
and max as the client sees them; recomputes the worker finished in the window (from
its log) and the tasks the consumer enqueued; after the window, whether every
edited playlist's newest version reached the cache; each process's CPU time in the
window and its resident memory (VmRSS) and peak (VmHWM).

the machine's two cores are shared by all of it, the stand-ins included (the
turbopuffer one searches exactly, in NumPy, on this machine's CPU where the real
service would spend its own): the latencies are the API's beside a busy worker and
consumer, not alone, and every process's CPU time is reported beside them. not
exercised: the API's inline compute on a miss (it needs the owner's PDS; `plyr-recs
bench api` times misses in process).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Final

from rich.console import Console
from rich.table import Table

from bench.api import Connection, request_bytes
from bench.load.stack import INTERNAL_TOKEN, ConsumerCounts, Memory, Stack, StackOptions
from bench.load.world import EDITS_ONLY, Edit, StreamSpec, WorldSpec, latest_versions

REQUEST_TIMEOUT_SECONDS: Final = 10.0
WARM_TIMEOUT_SECONDS: Final = 120.0
SETTLE_TIMEOUT_SECONDS: Final = 120.0
SOURCE: Final = b"x-recommendations-source: "
UNAVAILABLE: Final = b'"available":false'


@dataclass
class LoadResult:
    """what the clients saw in the window."""

    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    sources: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # transport faults, by type
    unavailable: int = 0  # 200 answers with `available: false`

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + sum(self.errors.values())

    @property
    def non_2xx(self) -> int:
        return sum(count for status, count in self.statuses.items() if not 200 <= status < 300)

    @property
    def server_errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status >= 500)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@dataclass
class LoadReport:
    clients: int
    edit_rate: float
    load: LoadResult
    idle: LoadResult | None  # the baseline: the same load before any edit, worker idle
    recomputes: Counter[str]  # the worker's outcomes during the window
    consumer: ConsumerCounts  # the consumer's counts during the window
    edited_playlists: int  # known playlists with a newer version than their row's
    newest_cached: int  # ...whose newest version was in the cache after the window
    settle_seconds: float  # how long after the window the last one took
    cpu_seconds: dict[str, float]  # per process (stand-ins and the driver too), in the window
    memory_start: dict[str, Memory]
    memory_end: dict[str, Memory]
    errors_logged: dict[str, int]
    exit_codes: dict[str, int | None] = field(default_factory=dict)


def recommendation_request(playlist_id: str, owner_did: str) -> bytes:
    headers = {"x-internal-token": INTERNAL_TOKEN, "x-viewer-did": owner_did}
    return request_bytes(f"/playlists/{playlist_id}/recommendations?limit=3", headers)


async def closed_loop(port: int, requests: list[bytes], clients: int, seconds: float) -> LoadResult:
    """`clients` connections, each sending its next request when the last is answered."""
    result = LoadResult(seconds)
    until = time.perf_counter() + seconds

    async def client(index: int) -> None:
        connection: Connection | None = None
        position = index
        while time.perf_counter() < until:
            request = requests[position % len(requests)]
            position += clients
            started = time.perf_counter()
            try:
                if connection is None:
                    connection = await Connection.open(port)
                async with asyncio.timeout(REQUEST_TIMEOUT_SECONDS):
                    status, head, body = await connection.get(request)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as error:
                result.errors[type(error).__name__] += 1
                if connection is not None:
                    connection.writer.close()
                connection = None
                continue
            result.latencies_ms.append((time.perf_counter() - started) * 1000)
            result.statuses[status] += 1
            result.sources[_source(head)] += 1
            if UNAVAILABLE in body:
                result.unavailable += 1
        if connection is not None:
            await connection.close()

    await asyncio.gather(*(client(i) for i in range(clients)))
    return result


def _source(head: bytes) -> str:
    start = head.find(SOURCE)
    if start < 0:
        return "none"
    start += len(SOURCE)
    return head[start : head.index(b"\r\n", start)].decode()


async def run_load(
    options: StackOptions,
    *,
    seconds: float,
    clients: int,
    redis_url: str | None = None,
    database_dsn: str | None = None,
    baseline_seconds: float = 0.0,
) -> LoadReport:
    """start the stack, warm the cache, load the API for `baseline_seconds` with the
    worker idle (the baseline), then for `seconds` while the edits stream in; wait for
    the newest versions to be cached; stop everything."""
    async with Stack(options, redis_url=redis_url, database_dsn=database_dsn) as stack:
        stream = stack.stream
        world = options.world
        creates = [edit for i in range(world.playlists) if (edit := stream.edit(i)) is not None]
        if options.keep_logs:
            print(f"logs in {stack.directory}")
        await stack.wait_cached(creates, within=WARM_TIMEOUT_SECONDS, what="first versions")
        requests = [recommendation_request(p.playlist_id, p.owner_did) for p in world.known]
        idle = None
        if baseline_seconds > 0:
            idle = await closed_loop(stack.api_port, requests, clients, baseline_seconds)

        processes = stack.service_processes()
        memory_start = {p.name: p.memory() for p in processes}
        cpu_start = stack.cpu_seconds()
        driver_cpu_start = time.process_time()
        outcomes_start = stack.worker_outcomes()
        consumer_start = await stack.consumer_counts()

        stack.release_edits()
        load = await closed_loop(stack.api_port, requests, clients, seconds)

        stack.check_alive()
        cpu = {name: used - cpu_start[name] for name, used in stack.cpu_seconds().items()}
        cpu["load generator"] = time.process_time() - driver_cpu_start
        recomputes = stack.worker_outcomes() - outcomes_start
        consumer = _difference(await stack.consumer_counts(), consumer_start)

        newest = _newest_edits(stream, options.frames)
        settle = await stack.wait_cached(
            newest, within=SETTLE_TIMEOUT_SECONDS, what="newest versions"
        )
        newest_cached = await stack.cached(newest)
        memory_end = {p.name: p.memory() for p in processes}
        errors_logged = stack.unexpected_errors()
    return LoadReport(
        clients=clients,
        edit_rate=options.rate,
        load=load,
        idle=idle,
        recomputes=recomputes,
        consumer=consumer,
        edited_playlists=len(newest),
        newest_cached=newest_cached,
        settle_seconds=settle,
        cpu_seconds=cpu,
        memory_start=memory_start,
        memory_end=memory_end,
        errors_logged=errors_logged,
        exit_codes=stack.exit_codes,
    )


def _newest_edits(stream: StreamSpec, frames: int | None) -> list[Edit]:
    """the newest version of every playlist edited after its create."""
    assert frames is not None, "the load's stream is finite"
    latest = latest_versions(stream, frames)
    return [edit for edit in latest.values() if edit.index >= stream.world.playlists]


def _difference(after: ConsumerCounts, before: ConsumerCounts) -> ConsumerCounts:
    return ConsumerCounts(
        **{name: getattr(after, name) - getattr(before, name) for name in vars(after)}
    )


def load_options(
    *,
    seconds: float,
    edit_rate: float,
    world: WorldSpec,
    debounce_seconds: float = 2.0,
) -> StackOptions:
    """the stack for a load window: edits only, held until the cache is warm, and
    exactly as many as the window takes at `edit_rate`."""
    return StackOptions(
        world=world,
        mix=EDITS_ONLY,
        frames=world.playlists + int(edit_rate * seconds),
        rate=edit_rate,
        hold_edits=True,
        debounce_seconds=debounce_seconds,
    )


def report(console: Console, result: LoadReport) -> None:
    load = result.load
    table = Table(title="plyr-recs API under load while the worker recomputes (loopback)")
    table.add_column("window", justify="left")
    for column in ("clients", "requests", "req/s", "errors", "non-2xx", "5xx"):
        table.add_column(column, justify="right")
    for column in ("p50 ms", "p90 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="right")
    windows = [("worker recomputing", load)]
    if result.idle is not None:
        windows.insert(0, ("worker idle (baseline)", result.idle))
    for name, window in windows:
        table.add_row(
            name,
            str(result.clients),
            f"{window.requests:,}",
            f"{window.requests / window.seconds:,.0f}",
            str(sum(window.errors.values())),
            str(window.non_2xx),
            str(window.server_errors),
            f"{window.percentile(0.50):.2f}",
            f"{window.percentile(0.90):.2f}",
            f"{window.percentile(0.99):.2f}",
            f"{max(window.latencies_ms, default=float('nan')):.2f}",
        )
    console.print(table)
    idle = result.idle
    if idle is not None and idle.latencies_ms:
        p99_ratio = load.percentile(0.99) / idle.percentile(0.99)
        rate_ratio = (load.requests / load.seconds) / (idle.requests / idle.seconds)
        console.print(f"recomputing / idle: p99 x{p99_ratio:.2f}, req/s x{rate_ratio:.2f}")
    console.print(
        f"statuses {dict(load.statuses)}; answers by source {dict(load.sources)}; "
        f"available:false {load.unavailable}; transport errors {dict(load.errors) or 0}"
    )
    work = ", ".join(f"{k} {v}" for k, v in sorted(result.recomputes.items()) if v) or "none"
    console.print(
        f"in the window ({load.seconds:.0f} s, edits at {result.edit_rate:g}/s): consumer read "
        f"{result.consumer.frames:,} frames, enqueued {result.consumer.recomputes:,} "
        f"recomputes; the worker finished: {work}"
    )
    console.print(
        f"after the window: {result.newest_cached}/{result.edited_playlists} edited "
        f"playlists had their newest version cached ({result.settle_seconds:.1f} s to settle)"
    )
    processes = Table(title="service processes")
    for column in ("process", "CPU s in window", "RSS start MB", "RSS end MB", "peak (VmHWM) MB"):
        processes.add_column(column, justify="left" if column == "process" else "right")
    for name in result.memory_end:
        processes.add_row(
            f"plyr-recs {name}",
            f"{result.cpu_seconds[name]:.1f}",
            f"{result.memory_start[name].rss_mb:.0f}",
            f"{result.memory_end[name].rss_mb:.0f}",
            f"{result.memory_end[name].peak_mb:.0f}",
        )
    console.print(processes)
    helpers = ", ".join(
        f"{name} {seconds:.1f}"
        for name, seconds in result.cpu_seconds.items()
        if name not in result.memory_end
    )
    console.print(f"CPU s in the window elsewhere: {helpers} (PostgreSQL's backends not counted)")
    console.print(f"errors logged: {result.errors_logged}; exit codes: {result.exit_codes}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=25.0, help="length of the load window")
    parser.add_argument("--clients", type=int, default=16, help="concurrent connections")
    parser.add_argument("--edit-rate", type=float, default=10.0, help="playlist edits per second")
    parser.add_argument("--playlists", type=int, default=200, help="playlists plyr.fm knows")
    parser.add_argument("--tracks", type=int, default=10_000, help="tracks in the catalogue")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs")
    arguments = parser.parse_args()
    world = WorldSpec(tracks=arguments.tracks, playlists=arguments.playlists)
    options = load_options(seconds=arguments.seconds, edit_rate=arguments.edit_rate, world=world)
    options = dataclasses.replace(options, keep_logs=arguments.keep_logs)
    console = Console(width=120)
    console.print(
        f"{world.playlists} playlists, {world.tracks:,} tracks; {arguments.clients} clients for "
        f"{arguments.seconds:g} s; edits at {arguments.edit_rate:g}/s"
    )
    result = asyncio.run(
        run_load(
            options,
            seconds=arguments.seconds,
            clients=arguments.clients,
            baseline_seconds=arguments.seconds,
        )
    )
    report(console, result)


if __name__ == "__main__":
    main()
