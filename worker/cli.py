"""the `plyr-recs` command: one entry point per process.

the benchmarks are not part of the product: they live in the development package
`bench/` at the repository's top level (`uv run python -m bench --help`).
"""

from __future__ import annotations

import os
from pathlib import Path

# the engine's matrices are small (<= 500 x 512): a multi-threaded BLAS spends more
# spinning its threads up than it saves, and docket runs tasks side by side anyway.
# measured with `python -m bench engine`: N=500 went from ~6.7 ms to ~1 ms of CPU.
# must be set before NumPy is first imported.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import typer  # noqa: E402

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
        "setting and its default: README.md, or worker/settings/."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command(
    "worker",
    epilog="Reads DOCKET_URL, DOCKET_NAME, REDIS_URL, DATABASE_URL, TURBOPUFFER_*, "
    "FUSION_MODE, WORKER_CONCURRENCY, PLAYLIST_WAIT_SECONDS, METRICS_PORT (/metrics, "
    "/health) and STARTUP_WAIT_SECONDS. Stops on SIGTERM/SIGINT; docket redelivers what "
    "was in flight.",
)
def worker_command() -> None:
    """run docket workers for the recompute and forget tasks the consumer enqueues
    (any number, on any machines sharing DOCKET_URL)."""
    from worker.processes.event_loop import run as run_on_loop
    from worker.processes.startup import load_process_settings, refusals
    from worker.processes.worker import serve

    with refusals("worker"):
        settings = load_process_settings("worker")
        run_on_loop(serve(settings), loop=settings.event_loop)


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
    from worker.processes.startup import load_process_settings, refusals

    with refusals("api"):
        settings = load_process_settings("api")
        asyncio.run(wait_for_dependencies(settings, database=True))
        run_api(settings)


@app.command(
    "jetstream",
    epilog="Reads JETSTREAM_URLS or JETSTREAM_URL (unset: the six public hosts, rotated), "
    "LIST_COLLECTION, "
    "TRACK_COLLECTION, DEBOUNCE_SECONDS, JETSTREAM_* limits, REDIS_URL (cursor, rev guard, "
    "counters) and DOCKET_URL. SIGTERM finishes the frames in hand and flushes the cursor.",
)
def jetstream_command() -> None:
    """follow the list collection on Jetstream and enqueue a recompute per playlist
    change (exactly one of these per deployment; needs REDIS_URL and a Redis DOCKET_URL)."""
    from worker.processes.event_loop import run as run_on_loop
    from worker.processes.jetstream import run_standalone
    from worker.processes.startup import load_process_settings, refusals

    with refusals("jetstream"):
        settings = load_process_settings("jetstream")
        run_on_loop(run_standalone(settings), loop=settings.event_loop)


@app.command(
    "status",
    epilog="Reads REDIS_URL and LIST_COLLECTION; exits 1 when no consumer is publishing "
    "(its counters are stale, or it stopped), 2 when Redis cannot be reached.",
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
    if status.warning is not None:  # stale counters: a script checking status sees it
        typer.echo(f"plyr-recs status: {status.warning}", err=True)
        raise typer.Exit(1)


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
    from worker.processes.startup import load_process_settings, refusals
    from worker.processes.warm import warm

    with refusals("warm"):
        settings = load_process_settings("warm", at_least="WARNING")
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

    from worker.processes.event_loop import run as run_on_loop
    from worker.processes.ops import wait_for_dependencies
    from worker.processes.run import RunOptions, run_embedded
    from worker.processes.startup import load_process_settings, refusals

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
        settings = load_process_settings("run", at_least="WARNING")
        asyncio.run(wait_for_dependencies(settings, database=True))
        code = run_on_loop(run_embedded(settings, options, Console()), loop=settings.event_loop)
    raise typer.Exit(code)


def main() -> None:
    app()
