"""`python -m bench engine`: the engine's CPU time per recommendation beside the
pure-Python seed (bench/baseline.py), measured in the same run.

what is timed, per playlist size N: one whole `engine.recommend` call with its
defaults, the vectors in hand (bench/engine_call.py): the matrix
assembled from the store's vectors, normalisation, strategy, k-means, fusion,
and (second column) eligibility and the artist cap through an in-memory
lookup. the store's own work is left out: vectors and candidate lists are made
up front. vectors are 512-dim unit vectors drawn around a few "sound regions",
like CLAP embeddings of a playlist with a few moods; the original's column times its
strategy and RRF on the same lists.

timings are CPU time (time.process_time) of back-to-back runs; each size runs
seven rounds and reports the median round (and the best), so one noisy moment
on a shared machine does not decide the figure.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from collections.abc import Callable

import numpy as np
from rich.console import Console
from rich.table import Table

from bench import baseline, engine_call
from engine.strategy import plan_queries
from engine.types import Candidate, Vector

REGIONS = 8
ROUNDS = 7
ROUND_SECONDS = 0.2  # per round, for the engine; the baseline runs fewer times


def playlist_vectors(n: int, dim: int, seed: int) -> dict[int, Vector]:
    rng = np.random.default_rng(seed)
    regions = rng.standard_normal((REGIONS, dim)).astype(np.float32)
    moods = rng.choice(REGIONS, size=3, replace=False)
    vectors: dict[int, Vector] = {}
    for i in range(n):
        vector = regions[moods[i % 3]] * 2.0 + rng.standard_normal(dim).astype(np.float32)
        vectors[1000 + i * 7] = (vector / np.linalg.norm(vector)).astype(np.float32)
    return vectors


def candidate_lists(queries: int, top_k: int, seed: int) -> list[list[Candidate]]:
    """what the store would answer: `queries` ranked lists that overlap in part."""
    rng = random.Random(seed)
    pool = list(range(1, top_k * queries * 2))
    lists = []
    for _ in range(queries):
        picked = rng.sample(pool, top_k)
        distances = sorted(rng.uniform(0.05, 0.6) for _ in picked)
        lists.append([Candidate(t, d) for t, d in zip(picked, distances, strict=True)])
    return lists


def cpu_seconds_per_run(
    run: Callable[[], object], budget: float, min_runs: int = 1
) -> tuple[float, float]:
    """(median, best) over ROUNDS of (CPU time of a round / runs in it)."""
    run()  # warm-up: imports, caches, BLAS threads
    gc.collect()
    samples = []
    for _ in range(ROUNDS):
        runs = 0
        start = time.process_time()
        while True:
            run()
            runs += 1
            elapsed = time.process_time() - start
            if runs >= min_runs and elapsed >= budget:
                break
        samples.append(elapsed / runs)
    return statistics.median(samples), min(samples)


def measure(n: int, dim: int, repeat: int) -> dict[str, object]:
    vectors = playlist_vectors(n, dim, seed=n)
    track_ids = list(vectors)
    plan = plan_queries(vectors)
    # as many lists as the store would answer (up to 16 for 2..5 tracks)
    lists = candidate_lists(max(len(plan.vectors), 1), engine_call.top_k(), seed=n)
    bare_store, _ = engine_call.whole_call(vectors, lists, catalog=False)
    store, lookup = engine_call.whole_call(vectors, lists, catalog=True)

    def engine_run() -> object:  # the whole call, no catalog: the measure
        return engine_call.call(bare_store, None, track_ids)

    def catalog_run() -> object:  # the whole call with eligibility and the artist cap
        return engine_call.call(store, lookup, track_ids)

    plain_vectors = [vectors[t].tolist() for t in vectors]
    plain_lists = [[(c.track_id, c.distance) for c in ranked] for ranked in lists]
    exclude = set(vectors)

    def baseline_run() -> object:
        queries = baseline.query_vectors(plain_vectors, random.Random(n))
        return queries, baseline.rrf(plain_lists[: len(queries)], exclude)

    if repeat:
        engine_seconds, engine_best = cpu_seconds_per_run(engine_run, 0.0, min_runs=repeat)
        catalog_seconds, _ = cpu_seconds_per_run(catalog_run, 0.0, min_runs=repeat)
        baseline_seconds, _ = cpu_seconds_per_run(baseline_run, 0.0, min_runs=max(1, repeat // 50))
    else:
        engine_seconds, engine_best = cpu_seconds_per_run(engine_run, ROUND_SECONDS)
        catalog_seconds, _ = cpu_seconds_per_run(catalog_run, ROUND_SECONDS)
        baseline_seconds, _ = cpu_seconds_per_run(baseline_run, ROUND_SECONDS)
    return {
        "n": n,
        "strategy": plan.strategy.value,
        "queries": len(plan.vectors),
        "engine_ms": engine_seconds * 1e3,
        "engine_best_ms": engine_best * 1e3,
        "catalog_ms": catalog_seconds * 1e3,
        "baseline_ms": baseline_seconds * 1e3,
        "speedup": baseline_seconds / engine_seconds,
    }


def main(sizes: list[int], *, dim: int = 512, repeat: int = 0) -> list[dict[str, object]]:
    console = Console(width=140)
    table = Table(
        title=f"CPU time of one whole engine.recommend call ({dim}-dim vectors in hand, "
        f"{engine_call.top_k()} candidates per query)"
    )
    columns = (
        "N",
        "strategy",
        "queries",
        "recommend",
        "(best round)",
        "with catalog",
        "pure-Python seed",
        "speedup",
    )
    for column in columns:
        table.add_column(column, justify="right")
    results = []
    with console.status("measuring...") as status:
        for n in sizes:
            status.update(f"measuring N={n}...")
            row = measure(n, dim, repeat)
            results.append(row)
            table.add_row(
                str(n),
                str(row["strategy"]),
                str(row["queries"]),
                f"{row['engine_ms']:.3f} ms",
                f"{row['engine_best_ms']:.3f} ms",
                f"{row['catalog_ms']:.3f} ms",
                f"{row['baseline_ms']:.2f} ms",
                f"{row['speedup']:.0f}x",
            )
    console.print(table)
    by_n = {row["n"]: row for row in results}
    if 100 in by_n:
        console.print(f"goal N=100 >= 50x faster than the original: {by_n[100]['speedup']:.0f}x")
    if 500 in by_n:
        console.print(
            f"goal N=500 < 0.3 ms per whole recommend call: {by_n[500]['engine_ms']:.3f} ms "
            f"({by_n[500]['catalog_ms']:.3f} ms with the catalog)"
        )
    return results
