"""the `plyr-recs` command: one entry point per process, plus benchmarks.

plyr-recs bench engine    CPU time of the engine beside a pure-Python baseline
plyr-recs bench quality   precision, coverage, mixture fidelity of the answers beside the original
plyr-recs bench api       the API's cache hits under load beside a bare route
plyr-recs bench jetstream frames/s through the consumer beside plain json.loads / docket.add
plyr-recs bench reliability every fault scenario against real parts, beside a fault-free run
plyr-recs bench abuse       each attack on the API from the network, beside a quiet phase
plyr-recs bench withdrawn   takedown -> gone from every answer; the check round; screened hits
plyr-recs bench journey     a cold deploy, opens, short TTLs, the edit flow and healing, end to end
"""

from __future__ import annotations

import os
from pathlib import Path

# the engine's matrices are small (<= 500 x 512): a multi-threaded BLAS spends more
# spinning its threads up than it saves, and docket runs tasks side by side anyway.
# measured with `plyr-recs bench engine`: N=500 went from ~6.7 ms to ~1 ms of CPU.
# must be set before NumPy is first imported.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

from typing import TYPE_CHECKING  # noqa: E402

import typer  # noqa: E402

if TYPE_CHECKING:
    from worker.settings import Settings

# the demo's bounds (worker.demo): kept here as numbers so `--help` loads no NumPy
MIN_DEMO_TRACKS = 240  # 24 sound regions of at least 10 tracks
MIN_DEMO_PLAYLISTS = 6  # worker.demo.session.MIN_PLAYLISTS

app = typer.Typer(
    name="plyr-recs",
    help="Playlist recommendations for plyr.fm, precomputed from the AT Protocol firehose.",
    epilog=(
        "Settings come from environment variables (or a .env file); with none set, "
        "`plyr-recs run` works on a machine with no servers. Production sets REDIS_URL, "
        "DOCKET_URL, DATABASE_URL, TURBOPUFFER_API_KEY and INTERNAL_API_TOKEN. Every "
        "setting and its default: README.md, or worker/settings.py."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

bench_app = typer.Typer(
    help="Measure a part of the service beside a baseline measured in the same run.",
    no_args_is_help=True,
)
app.add_typer(bench_app, name="bench")


@bench_app.command("engine")
def bench_engine(
    sizes: str = typer.Option(
        "1,5,20,100,500", help="comma-separated playlist sizes (tracks with embeddings)."
    ),
    dim: int = typer.Option(512, min=2, max=4096, help="embedding dimension."),
    repeat: int = typer.Option(0, min=0, help="runs per size (0: chosen per size for ~1 s)."),
) -> None:
    """the engine's CPU time per recommendation (one whole recommend call with the vectors
    in hand, store work excluded) beside a pure-Python implementation of plyr.fm's
    original algorithm."""
    from worker.bench.engine import main as run_engine_bench

    parsed = [int(part) for part in sizes.split(",") if part.strip()]
    if not parsed or any(size < 1 for size in parsed):
        raise typer.BadParameter("sizes must be positive integers", param_hint="--sizes")
    run_engine_bench(parsed, dim=dim, repeat=repeat)


@bench_app.command("quality")
def bench_quality(
    quick: bool = typer.Option(False, "--quick", help="a small world (the CI test's size)."),
    seeds: str = typer.Option("1,2,3", help="comma-separated world seeds."),
    algorithms: str = typer.Option(
        "", help="comma-separated algorithms (default: all, see worker/bench/quality_algorithms.py)"
    ),
    json_path: Path | None = typer.Option(None, "--json", help="also write the figures here."),
) -> None:
    """quality of the answers on generated catalogues with known sound regions: precision,
    region coverage, mixture fidelity, leave-one-out hit rate, artists, novelty; every
    algorithm side by side (plyr.fm's original, the engine's modes, a mean-vector query)."""
    from worker.bench.quality import main as run_quality_bench
    from worker.bench.quality_algorithms import ALGORITHMS, by_name
    from worker.bench.quality_world import FULL, QUICK

    try:
        parsed_seeds = [int(part) for part in seeds.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter("seeds must be integers", param_hint="--seeds") from None
    if not parsed_seeds or len(parsed_seeds) > 20 or any(s < 0 for s in parsed_seeds):
        raise typer.BadParameter("1-20 non-negative seeds", param_hint="--seeds")
    names = [part.strip() for part in algorithms.split(",") if part.strip()]
    try:
        chosen = by_name(names) if names else list(ALGORITHMS)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--algorithms") from None
    run_quality_bench(QUICK if quick else FULL, parsed_seeds, chosen, json_path=json_path)


@bench_app.command("api")
def bench_api(
    clients: str = typer.Option("1,16,64", help="comma-separated concurrent client counts."),
    seconds: float = typer.Option(3.0, min=0.5, max=60, help="measured seconds per level."),
    misses: int = typer.Option(20, min=1, max=200, help="cache misses timed one by one."),
    rate: float = typer.Option(
        1500.0, min=0, max=100_000, help="req/s offered in the paced run (0: skip it)."
    ),
) -> None:
    """cache hits of the API under uvicorn (req/s, p50, p99 at each client count, and at a
    fixed offered rate) beside a bare route of the same app, and the time of a miss; a
    real redis-server, loopback."""
    from worker.bench.api import main as run_api_bench

    levels = [int(part) for part in clients.split(",") if part.strip()]
    if not levels or any(not 1 <= level <= 512 for level in levels):
        raise typer.BadParameter("client counts must be within 1..512", param_hint="--clients")
    run_api_bench(levels=levels, seconds=seconds, rate=rate, misses=misses)


@app.command(
    "worker",
    epilog="Reads DOCKET_URL, DOCKET_NAME, REDIS_URL, DATABASE_URL, TURBOPUFFER_* , "
    "FUSION_MODE, WORKER_CONCURRENCY, PLAYLIST_WAIT_SECONDS. Stops on SIGTERM/SIGINT; "
    "docket redelivers what was in flight.",
)
def worker_command() -> None:
    """run docket workers for the recompute and forget tasks the consumer enqueues
    (any number, on any machines sharing DOCKET_URL)."""
    import asyncio

    from worker.processes.startup import load_settings, refusals
    from worker.processes.worker import serve

    with refusals("worker"):
        settings = load_settings()
        _configure_logging(settings)
        asyncio.run(serve(settings))


@app.command(
    "api",
    epilog="Reads API_HOST, API_PORT, REDIS_URL, DATABASE_URL, TURBOPUFFER_*, SERVICE_DID, "
    "INTERNAL_API_TOKEN, PLC_DIRECTORY_URL, DID_CACHE_SECONDS. Owner-only: a service-auth "
    "JWT (aud=SERVICE_DID, lxm=fm.plyr.getPlaylistRecommendations) or X-Internal-Token + "
    "X-Viewer-Did.",
)
def api_command() -> None:
    """serve GET /playlists/{playlist_id}/recommendations, /health and /metrics with
    uvicorn on API_HOST:API_PORT (any number of these, behind a load balancer)."""
    import asyncio

    from worker.api.app import run as run_api
    from worker.processes.ops import wait_for_dependencies
    from worker.processes.startup import load_settings, refusals

    with refusals("api"):
        settings = load_settings()
        _configure_logging(settings)
        asyncio.run(wait_for_dependencies(settings, database=True))
        run_api(settings)


@bench_app.command("jetstream")
def bench_jetstream(
    frames: int = typer.Option(20_000, min=1_000, max=1_000_000, help="frames per stream."),
    playlists: int = typer.Option(
        2_000, min=1, max=1_000_000, help="distinct playlists the list commits touch."
    ),
) -> None:
    """frames/s through decode + validate + guard + enqueue from the replay server (only
    list commits; a mixed stream), the decode + filter rate on one core, each beside a
    baseline from the same run; docket and state on a real redis-server."""
    from worker.bench.jetstream import main as run_jetstream_bench

    run_jetstream_bench(frames=frames, playlists=playlists)


@bench_app.command("abuse")
def bench_abuse(
    seconds: float = typer.Option(4.0, min=1.0, max=60.0, help="seconds per attack."),
    rate: float = typer.Option(50.0, min=1.0, max=1000.0, help="legitimate requests a second."),
) -> None:
    """each issue-16 attack (idle connections, slowloris, huge and countless headers,
    /health flood, bogus did:plc and silent did:web tokens, one DID filling Redis) against
    the real API on loopback, legitimate owners asking throughout, beside a quiet phase:
    their answers, p99, and the server's threads, sockets and Redis bytes. exits 1 if a
    legitimate answer changed or a p99 passed 2x the quiet one."""
    from worker.bench.abuse.report import main as run_abuse_bench

    raise typer.Exit(run_abuse_bench(seconds=seconds, rate=rate))


@bench_app.command("reliability")
def bench_reliability(
    size: str = typer.Option(
        "full",
        help="full: 5,000+ frames, 200 playlists, 3 s faults (~20 min); "
        "ci: the test suite's small world (~2 min).",
    ),
    only: list[str] = typer.Option(
        [], help="run only the scenarios whose name contains this (repeatable)."
    ),
) -> None:
    """every fault scenario (websocket drops, stalls and refusals, Redis killed with and
    without its data, PostgreSQL down, turbopuffer 429/500/slow, worker and consumer
    SIGKILLed, double and out-of-order delivery) on real parts, each judged against the
    fault-free run: a table of events, faults, lost, wrong, 5xx and time to recover.
    exits 1 if anything was lost or wrong. needs redis-server and PostgreSQL installed
    (it starts its own on loopback)."""
    if size not in ("full", "ci"):
        raise typer.BadParameter("size is full or ci", param_hint="--size")
    from worker.bench.reliability.report import main as run_reliability_bench

    argv = ["--size", size, *(arg for word in only for arg in ("--only", word))]
    raise typer.Exit(run_reliability_bench(argv))


@bench_app.command("withdrawn")
def bench_withdrawn(
    takedowns: int = typer.Option(50, min=1, max=1000, help="takedowns timed."),
    at_once: int = typer.Option(5, min=1, max=50, help="takedowns made together."),
    answers: int = typer.Option(
        100_000, min=1000, max=1_000_000, help="cached answers for the round's cost."
    ),
    seconds: float = typer.Option(3.0, min=0.5, max=60, help="seconds per hit window."),
) -> None:
    """how fast a takedown leaves every answer (p50/p99, PostgreSQL, the worker's check
    round, the API), the check round's cost over many cached answers, and cache hits
    screened against withdrawals beside the same hits unscreened."""
    from worker.bench.withdrawn import main as run_withdrawn_bench

    run_withdrawn_bench(takedowns=takedowns, at_once=at_once, answers=answers, seconds=seconds)


@bench_app.command("journey")
def bench_journey(
    playlists: int = typer.Option(2_000, min=50, max=100_000, help="playlists plyr.fm has."),
    opens: int = typer.Option(1_000, min=10, max=100_000, help="editor opens over a minute."),
    edits: int = typer.Option(50, min=1, max=1_000, help="edits per edit-flow and healing row."),
    active: int = typer.Option(100, min=1, max=10_000, help="active playlists in the TTL run."),
    skip_ttl: bool = typer.Option(False, "--skip-ttl", help="skip the CACHE_TTL_SECONDS=60 run."),
    skip_deploy: bool = typer.Option(
        False, "--skip-deploy", help="only the CACHE_TTL_SECONDS=60 run."
    ),
    pds_hosts: int = typer.Option(8, min=1, max=64, help="PDS hosts the owners are spread over."),
) -> None:
    """the journey on the production processes (jetstream, worker x2, api) with real Redis
    and PostgreSQL and latency-bearing PDS and turbopuffer stand-ins: a cold deploy
    (time to 50 %/100 % warm, then editor opens), active playlists under a 60 s TTL, the
    edit flow beside the seed's inline path, and healing of versions only the database
    knows. several minutes; needs redis-server and PostgreSQL installed."""
    from worker.bench.journey import main as run_journey_bench

    run_journey_bench(
        playlists=playlists,
        opens=opens,
        edits=edits,
        active=active,
        skip_ttl=skip_ttl,
        skip_deploy=skip_deploy,
        pds_hosts=pds_hosts,
    )


@app.command(
    "jetstream",
    epilog="Reads JETSTREAM_URL (unset: the four public hosts, rotated), LIST_COLLECTION, "
    "TRACK_COLLECTION, DEBOUNCE_SECONDS, JETSTREAM_* limits, REDIS_URL (cursor, rev guard, "
    "counters) and DOCKET_URL. SIGTERM finishes the frames in hand and flushes the cursor.",
)
def jetstream_command() -> None:
    """follow the list collection on Jetstream and enqueue a recompute per playlist
    change (exactly one of these per deployment; needs REDIS_URL and a Redis DOCKET_URL)."""
    import asyncio

    from worker.processes.jetstream import run_standalone
    from worker.processes.startup import load_settings, refusals

    with refusals("jetstream"):
        settings = load_settings()
        _configure_logging(settings)
        asyncio.run(run_standalone(settings))


@app.command(
    "status",
    epilog="Reads REDIS_URL and LIST_COLLECTION; exits 1 when Redis cannot be reached.",
)
def status_command() -> None:
    """the Jetstream consumer's counters and cursor lag, as published in REDIS_URL, and
    the reconcile loop's last pass (when, how long, counts) and missed_by_firehose."""
    import asyncio

    from rich.console import Console

    from jetstream.faults import REDIS_UNAVAILABLE
    from jetstream.status import render_status
    from worker.processes.jetstream import current_status
    from worker.processes.startup import load_settings, refusals
    from worker.processes.waiting import wait_for_redis
    from worker.processes.warm import reconcile_status, render_reconcile_status

    with refusals("status"):
        settings = load_settings()
        if settings.redis_url is not None:  # a query answers now: no wait
            asyncio.run(wait_for_redis("REDIS_URL", settings.redis_url, seconds=0))
        try:
            status = asyncio.run(current_status(settings))
            last, totals = asyncio.run(reconcile_status(settings))
        except REDIS_UNAVAILABLE as error:  # it answered the ping, then stopped
            typer.echo(f"plyr-recs status: REDIS_URL stopped answering: {error}", err=True)
            raise typer.Exit(1) from None
    console = Console()
    console.print(render_status(status))
    console.print(render_reconcile_status(last, totals))


@app.command(
    "warm",
    epilog="Reads REDIS_URL, DOCKET_URL, DATABASE_URL, RECONCILE_*, REFRESH_*, PDS_* and "
    "CACHE_TTL_SECONDS. The workers run the recomputes it enqueues.",
)
def warm_command(
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        metavar="",
        help="read plyr.fm and the cache only: no PDS read, no enqueue.",
    ),
) -> None:
    """one reconcile pass now, in the foreground: every live playlist whose current
    version is not cached (or is due for refresh) is enqueued for the workers; a
    progress bar, then a summary (already warm, enqueued, deleted, private, failed by
    reason). exits 0 when the pass completed."""
    import asyncio

    from rich.console import Console

    from engine.ports import CatalogError
    from jetstream.faults import REDIS_UNAVAILABLE
    from worker.processes.ops import wait_for_dependencies
    from worker.processes.startup import load_settings, refusals
    from worker.processes.warm import warm

    with refusals("warm"):
        settings = load_settings()
        _configure_logging(settings, at_least="WARNING")
        asyncio.run(wait_for_dependencies(settings, database=True))
        try:
            code = asyncio.run(warm(settings, Console(), dry_run=dry_run))
        except (CatalogError, *REDIS_UNAVAILABLE) as error:
            typer.echo(f"plyr-recs warm: the pass stopped: {error}", err=True)
            raise typer.Exit(1) from None
    raise typer.Exit(code)


@app.command("run")
def run_command(
    for_seconds: float | None = typer.Option(
        None, "--for", min=0.1, metavar="SECONDS", help="stop after this many seconds."
    ),
    until_idle: bool = typer.Option(
        False,
        "--until-idle",
        metavar="",
        help="stop once the session is replayed and every task is done.",
    ),
    tracks: int = typer.Option(
        20_000,
        min=MIN_DEMO_TRACKS,
        max=1_000_000,
        metavar="N",
        help="demo catalogue size (its 24 sound regions need 10 tracks each).",
    ),
    artists: int = typer.Option(
        300, min=10, max=100_000, metavar="N", help="demo artists (at most --tracks)."
    ),
    playlists: int = typer.Option(
        12,
        min=MIN_DEMO_PLAYLISTS,
        max=200,
        metavar="N",
        help="playlists in the demo session (the first six tell the whole story).",
    ),
    spacing_ms: float = typer.Option(
        250.0, min=1, max=60_000, metavar="MS", help="usual gap between the session's frames."
    ),
    seed: int = typer.Option(0, min=0, metavar="N", help="seed of the demo catalogue and session."),
    cache_dir: Path | None = typer.Option(
        None,
        metavar="DIR",
        help="where the demo catalogue is cached (default: ~/.cache/plyr-recs).",
    ),
    summary: Path | None = typer.Option(
        None,
        metavar="FILE",
        help="also write the run's summary as JSON to this file (for scripts).",
    ),
) -> None:
    """the whole service in one process on embedded defaults: a generated catalogue,
    an in-process Redis, docket on memory://, a local Jetstream replaying a session of
    playlist edits, and the real consumer, worker and API. Set REDIS_URL, DOCKET_URL,
    DATABASE_URL, TURBOPUFFER_API_KEY or JETSTREAM_URL to use real services instead."""
    import asyncio

    from rich.console import Console

    from worker.processes.ops import wait_for_dependencies
    from worker.processes.run import RunOptions, run_embedded
    from worker.processes.startup import load_settings, refusals

    if artists > tracks:
        raise typer.BadParameter(
            f"at most --tracks ({tracks}) artists: each artist has a track", param_hint="--artists"
        )
    options = RunOptions(
        for_seconds=for_seconds,
        until_idle=until_idle,
        tracks=tracks,
        artists=artists,
        playlists=playlists,
        spacing_ms=spacing_ms,
        seed=seed,
        cache_dir=cache_dir,
        summary_path=summary,
    )
    with refusals("run"):
        settings = load_settings()
        _configure_logging(settings, at_least="WARNING")
        asyncio.run(wait_for_dependencies(settings, database=True))
        code = asyncio.run(run_embedded(settings, options, Console()))
    raise typer.Exit(code)


def _configure_logging(settings: Settings, *, at_least: str = "DEBUG") -> None:
    """LOG_LEVEL and LOG_FORMAT; the commands with a console of their own (`run`,
    `warm`) log warnings and worse only, whatever LOG_LEVEL says below that."""
    from worker.processes.logs import configure_logging

    levels = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
    level = max(settings.log_level, at_least, key=levels.index)
    configure_logging(level, log_format=settings.log_format)


def main() -> None:
    app()
