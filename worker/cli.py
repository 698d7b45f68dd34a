"""the `plyr-recs` command: one entry point per process, plus benchmarks.

plyr-recs bench engine    CPU time of the engine beside a pure-Python baseline
"""

from __future__ import annotations

import typer

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


def main() -> None:
    app()
