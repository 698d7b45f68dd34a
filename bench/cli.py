"""`python -m bench ...`: measure a part of the service beside a baseline measured in
the same run. development only: the wheel and the image leave this package out.

python -m bench engine      CPU time of the engine beside a pure-Python baseline
python -m bench store       CPU of the turbopuffer adapter's calls beside its previous way
python -m bench quality     precision, coverage, mixture fidelity of the answers beside the original
python -m bench api         the API's cache hits under load beside a bare route
python -m bench jetstream   frames/s through the consumer beside plain json.loads / docket.add
python -m bench reliability every fault scenario against real parts, beside a fault-free run
python -m bench abuse       each attack on the API from the network, beside a quiet phase
python -m bench withdrawn   takedown -> gone from every answer; the check round; screened hits
python -m bench pds         CPU per PDS answer decoded: the SDK's models beside orjson + validator
python -m bench pds-client  client CPU per PDS read: aiohttp (now) beside httpx (before)
python -m bench journey     a cold deploy, opens, short TTLs, the edit flow and healing, end to end
python -m bench task-bytes  Redis growth while accounts at their pace wait for plyr.fm's ingest
python -m bench scale       a cold deploy at 1, 2, 4 workers: CPU per recompute, Redis bytes, a pass
python -m bench floor       one recompute's CPU step by step (clients, docket, engine), the whole
"""

from __future__ import annotations

import os
from pathlib import Path

# as `plyr-recs` does (worker.cli): one BLAS thread, set before NumPy is imported
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import typer  # noqa: E402

from worker.settings.reconcile import DEFAULT_BATCH_SIZE, MAX_BATCH_ITEMS  # noqa: E402

app = typer.Typer(
    name="bench",
    help="Measure a part of plyr-recs beside a baseline measured in the same run.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command("engine")
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
    from bench.engine import main as run_engine_bench

    parsed = [int(part) for part in sizes.split(",") if part.strip()]
    if not parsed or any(size < 1 for size in parsed):
        raise typer.BadParameter("sizes must be positive integers", param_hint="--sizes")
    run_engine_bench(parsed, dim=dim, repeat=repeat)


@app.command("store")
def bench_store(
    sizes: str = typer.Option(
        "1,2,5,6,20,100,500", help="comma-separated playlist sizes for the whole recommend."
    ),
) -> None:
    """the caller's CPU per turbopuffer call (an id lookup of 500 tracks, a multi-query)
    and per whole recommend, through the adapter now, its previous way (the client's
    models) and the vector cache; the turbopuffer stand-in in a process of its own."""
    from bench.store import main as run_store_bench

    parsed = [int(part) for part in sizes.split(",") if part.strip()]
    if not parsed or any(not 1 <= size <= 500 for size in parsed):
        raise typer.BadParameter("sizes must be within 1..500", param_hint="--sizes")
    run_store_bench(parsed)


@app.command("quality")
def bench_quality(
    quick: bool = typer.Option(False, "--quick", help="a small world (the CI test's size)."),
    clap: bool = typer.Option(
        False,
        "--clap",
        help="a world with CLAP's geometry: every similarity positive around a common "
        "direction, regions of unequal spread, near-duplicates by one artist.",
    ),
    seeds: str = typer.Option("1,2,3", help="comma-separated world seeds."),
    algorithms: str = typer.Option(
        "", help="comma-separated algorithms (default: all, see bench/quality_algorithms.py)"
    ),
    json_path: Path | None = typer.Option(None, "--json", help="also write the figures here."),
) -> None:
    """quality of the answers on generated catalogues with known sound regions: precision,
    region coverage, mixture fidelity, leave-one-out hit rate, artists, novelty; every
    algorithm side by side (plyr.fm's original, the engine's modes, a mean-vector query)."""
    from bench.quality import main as run_quality_bench
    from bench.quality_algorithms import ALGORITHMS, by_name
    from bench.quality_world import CLAP_FULL, CLAP_QUICK, FULL, QUICK

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
    shape = (CLAP_QUICK if quick else CLAP_FULL) if clap else (QUICK if quick else FULL)
    run_quality_bench(shape, parsed_seeds, chosen, json_path=json_path)


@app.command("api")
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
    from bench.api import main as run_api_bench

    levels = [int(part) for part in clients.split(",") if part.strip()]
    if not levels or any(not 1 <= level <= 512 for level in levels):
        raise typer.BadParameter("client counts must be within 1..512", param_hint="--clients")
    run_api_bench(levels=levels, seconds=seconds, rate=rate, misses=misses)


@app.command("jetstream")
def bench_jetstream(
    frames: int = typer.Option(20_000, min=1_000, max=1_000_000, help="frames per stream."),
    playlists: int = typer.Option(
        2_000, min=1, max=1_000_000, help="distinct playlists the list commits touch."
    ),
) -> None:
    """frames/s through decode + validate + guard + enqueue from the replay server (only
    list commits; a mixed stream), the decode + filter rate on one core, each beside a
    baseline from the same run; docket and state on a real redis-server."""
    from bench.jetstream import main as run_jetstream_bench

    run_jetstream_bench(frames=frames, playlists=playlists)


@app.command("abuse")
def bench_abuse(
    seconds: float = typer.Option(4.0, min=1.0, max=60.0, help="seconds per attack."),
    rate: float = typer.Option(50.0, min=1.0, max=1000.0, help="legitimate requests a second."),
    only: str = typer.Option(
        "", help="comma-separated rows to run (an attack's or a component's name; see --list)."
    ),
    list_rows: bool = typer.Option(False, "--list", help="print the rows' names and stop."),
) -> None:
    """each issue-16 and issue-23 attack against the real API on loopback (idle
    connections, slowloris, huge and countless headers, /health flood, bogus did:plc and
    silent did:web tokens, floods of Redis, hostile and hanging PDSes), legitimate owners,
    did:plc and did:web users and misses throughout, beside a quiet window; then the
    components (consumer, reconcile reads, editor page) run for real beside a quiet run.
    exits 1 if a legitimate outcome was wrong or a resource out of its bound (the p99
    ratio is shown, not judged)."""
    from bench.abuse.report import main as run_abuse_bench
    from bench.abuse.report import row_names

    names = row_names()
    if list_rows:
        typer.echo("\n".join(names))
        raise typer.Exit(0)
    chosen = {part.strip() for part in only.split(",") if part.strip()}
    unknown = sorted(chosen - set(names))
    if unknown:
        raise typer.BadParameter(
            f"no row named {', '.join(unknown)} (one of: {', '.join(names)})",
            param_hint="--only",
        )
    raise typer.Exit(run_abuse_bench(seconds=seconds, rate=rate, only=chosen or None))


@app.command("task-bytes")
def bench_task_bytes(
    accounts: int = typer.Option(10, min=1, max=1000, help="accounts, one playlist a second each."),
    seconds: float = typer.Option(60.0, min=5.0, max=600.0, help="how long they keep at it."),
    tracks: int = typer.Option(500, min=1, max=500, help="tracks per playlist."),
    sample: float = typer.Option(10.0, min=1.0, help="seconds between two rows."),
) -> None:
    """Redis growth while accounts, each at the allowed pace, create playlists plyr.fm
    never ingests (their tasks retry for 120 s): the real consumer, docket and worker
    on a loopback redis-server, beside the bound the flood control promises."""
    from bench.task_bytes import main as run_task_bytes_bench

    run_task_bytes_bench(accounts=accounts, seconds=seconds, tracks=tracks, sample=sample)


@app.command("pds")
def bench_pds() -> None:
    """CPU per getRecord answer decoded and checked (a valid 500-item record, the 0.8 MB
    hostile one, the costliest shapes of the largest answer read): the atproto SDK's
    models (the path before issue 23) beside the bounded orjson path, in the same run.
    exits 1 if the valid record reads differently through the two."""
    from bench.pds import main as run_pds_bench

    raise typer.Exit(run_pds_bench())


@app.command("pds-client")
def bench_pds_client(
    rounds: int = typer.Option(7, min=1, max=100, help="rounds; the median is reported."),
    reads: int = typer.Option(320, min=16, max=100_000, help="reads per path and shape a round."),
    json_path: Path | None = typer.Option(
        None, "--json", help="also write the figures here.", dir_okay=False
    ),
) -> None:
    """client CPU per getRecord read through `PdsRecords` (aiohttp) beside the httpx
    client it replaced, one read after another and 16 at once; the PDS stand-in in a
    thread of its own, its CPU left out."""
    from bench.pds_client import main as run_pds_client_bench

    run_pds_client_bench(rounds=rounds, reads=reads, json_path=json_path)


@app.command("reliability")
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
    from bench.reliability.report import main as run_reliability_bench

    argv = ["--size", size, *(arg for word in only for arg in ("--only", word))]
    raise typer.Exit(run_reliability_bench(argv))


@app.command("withdrawn")
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
    from bench.withdrawn import main as run_withdrawn_bench

    run_withdrawn_bench(takedowns=takedowns, at_once=at_once, answers=answers, seconds=seconds)


@app.command("journey")
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
    from bench.journey import main as run_journey_bench

    run_journey_bench(
        playlists=playlists,
        opens=opens,
        edits=edits,
        active=active,
        skip_ttl=skip_ttl,
        skip_deploy=skip_deploy,
        pds_hosts=pds_hosts,
    )


@app.command("scale")
def bench_scale(
    playlists: int = typer.Option(20_000, min=10, max=1_000_000, help="playlists plyr.fm has."),
    workers: str = typer.Option("1,2,4", help="comma-separated worker process counts."),
    concurrency: int = typer.Option(6, min=1, max=64, help="WORKER_CONCURRENCY of each."),
    pace: float = typer.Option(
        1_000.0, min=1, max=10_000, help="RECONCILE_MAX_PER_SECOND of the cold deploy."
    ),
    pds_hosts: int = typer.Option(8, min=1, max=64, help="PDS hosts the owners are spread over."),
    timeout: float = typer.Option(1_800.0, min=10, help="seconds each cold deploy may take."),
    env: list[str] = typer.Option(
        [], "--env", help="KEY=VALUE: a setting of the service's processes (repeatable)."
    ),
    json_path: Path | None = typer.Option(None, "--json", help="also write the figures here."),
    idle_window: float = typer.Option(
        10.0,
        min=1,
        max=600,
        help="seconds of idle baseline (docket's polling, the loops) measured before the "
        "warm pass and netted out of its Redis figures; shorter is noisier.",
    ),
) -> None:
    """a cold deploy on a fresh Redis for each worker count (the same PostgreSQL world):
    time to 50 %/100 % warm, recomputes per worker-CPU-second beside the first count's,
    Redis bytes per cached playlist by key family, then one reconcile pass with
    everything warm (seconds, rows, Redis round trips, PDS reads); the extrapolation
    to 1 M playlists. needs redis-server and PostgreSQL installed."""
    from bench.scale import ScaleOptions
    from bench.scale import main as run_scale_bench

    try:
        counts = tuple(int(part) for part in workers.split(",") if part.strip())
    except ValueError:
        raise typer.BadParameter("worker counts are integers", param_hint="--workers") from None
    if not counts or any(not 1 <= count <= 16 for count in counts):
        raise typer.BadParameter("worker counts must be within 1..16", param_hint="--workers")
    pairs = [item.partition("=") for item in env]
    if any(not key or not sep for key, sep, _ in pairs):
        raise typer.BadParameter("settings are KEY=VALUE", param_hint="--env")
    options = ScaleOptions(
        extra_env=tuple((key, value) for key, _, value in pairs),
        playlists=playlists,
        workers=counts,
        concurrency=concurrency,
        pace=pace,
        pds_hosts=pds_hosts,
        timeout_seconds=timeout,
        idle_window_seconds=idle_window,
    )
    run_scale_bench(options, json_path=json_path)


@app.command("floor")
def bench_floor(
    rounds: int = typer.Option(5, min=1, max=50, help="rounds; each figure is their median."),
    tracks: int = typer.Option(
        0, min=0, max=100, help="tracks of the typical playlist (0: the median of bench scale's)."
    ),
    playlists: int = typer.Option(
        100, min=1, max=400, help="recomputes per round of the whole (playlists, no track shared)."
    ),
    tasks: int = typer.Option(500, min=1, max=100_000, help="no-op tasks per round of docket's."),
    concurrency: int = typer.Option(
        10, min=1, max=64, help="the docket worker's concurrency (WORKER_CONCURRENCY's default)."
    ),
    round_seconds: float = typer.Option(
        0.25, min=0.01, max=10, help="CPU seconds each step's calls are repeated for, a round."
    ),
    loop: str = typer.Option("uvloop", help="the event loop: uvloop (the worker's) or asyncio."),
    batch_size: int = typer.Option(
        DEFAULT_BATCH_SIZE,
        min=1,
        max=MAX_BATCH_ITEMS,
        help="playlists per recompute_batch task of the batched whole (RECONCILE_BATCH_SIZE).",
    ),
    json_path: Path | None = typer.Option(None, "--json", help="also write the figures here."),
) -> None:
    """the caller's CPU per call of each step a recompute must take (turbopuffer's id
    lookup and multi-query, each beside a bare HTTP client; PostgreSQL's two statements;
    Redis' lock, slot and write; docket's run of a task; the engine), their sum beside the
    real recompute task through a docket worker, and the glue between; the same
    recomputes batched as the reconcile loop enqueues them. needs
    redis-server and PostgreSQL installed (it starts its own on loopback)."""
    from bench.floor import FloorOptions
    from bench.floor import main as run_floor_bench
    from bench.floor_world import max_playlists, median_playlist_size

    if loop not in ("uvloop", "asyncio"):
        raise typer.BadParameter("uvloop or asyncio", param_hint="--loop")
    size = tracks or median_playlist_size()
    if size < 6:
        raise typer.BadParameter("at least 6 tracks (three moods)", param_hint="--tracks")
    if playlists > max_playlists(size):
        raise typer.BadParameter(
            f"at most {max_playlists(size)} playlists of {size} tracks without a shared track",
            param_hint="--playlists",
        )
    options = FloorOptions(
        rounds=rounds,
        tracks=size,
        playlists=playlists,
        tasks=tasks,
        concurrency=concurrency,
        round_cpu_seconds=round_seconds,
        loop="uvloop" if loop == "uvloop" else "asyncio",
        batch_size=batch_size,
    )
    run_floor_bench(options, json_path=json_path)


def main() -> None:
    app()
