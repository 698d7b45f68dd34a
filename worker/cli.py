"""the `plyr-recs` command: one entry point per process, plus benchmarks.

plyr-recs bench engine    CPU time of the engine beside a pure-Python baseline
"""

from __future__ import annotations

import os

# the engine's matrices are small (<= 500 x 512): a multi-threaded BLAS spends more
# spinning its threads up than it saves, and docket runs tasks side by side anyway.
# measured with `plyr-recs bench engine`: N=500 went from ~6.7 ms to ~1 ms of CPU.
# must be set before NumPy is first imported.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import typer  # noqa: E402

app = typer.Typer(
    name="plyr-recs",
    help="Playlist recommendations for plyr.fm, precomputed from the AT Protocol firehose.",
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
    """the engine's CPU time per recommendation (strategy + k-means + fusion, store calls
    excluded) beside a pure-Python implementation of the seed's algorithm."""
    from worker.bench.engine import main as run_engine_bench

    parsed = [int(part) for part in sizes.split(",") if part.strip()]
    if not parsed or any(size < 1 for size in parsed):
        raise typer.BadParameter("sizes must be positive integers", param_hint="--sizes")
    run_engine_bench(parsed, dim=dim, repeat=repeat)


@app.command("worker")
def worker_command() -> None:
    """run docket workers for the recompute and forget tasks the consumer enqueues
    (any number, on any machines sharing DOCKET_URL)."""
    import asyncio

    from worker.logs import configure_logging
    from worker.runner import serve
    from worker.services import ConfigurationError
    from worker.settings import get_settings

    configure_logging()
    try:
        asyncio.run(serve(get_settings()))
    except ConfigurationError as error:
        typer.echo(f"plyr-recs worker: {error}", err=True)
        raise typer.Exit(2) from None


def main() -> None:
    app()
