"""`python -m bench store`: the CPU the turbopuffer adapter costs its process per call,
beside its previous way (bench/store_baseline.py), measured in the same run.

the turbopuffer-speaking server (bench/loopback/turbopuffer.py, 2,000 tracks in 8
sound regions) runs in a process of its own, so what is timed is the caller's
CPU alone (time.process_time: Python, the HTTP client, the kernel's side of the
socket): the real client over loopback, the request built, sent, the answer
read, parsed and checked. three tables:

- one id lookup of 500 tracks: JSON floats through the client's models, base64
  through them (the adapter before), base64 parsed by orjson and decoded by
  pybase64 (the adapter now), and the vector cache with every id in it;
- one multi-query (3 centroids, 115 candidates each, 500 ids excluded): the
  client's models, the answer's rows checked one by one (before issue 20's fast
  path, `engine.candidate_rows`), and the adapter now;
- the whole `engine.recommend` per playlist size (no catalog: PostgreSQL is not
  part of this), through the old adapter, the new one, and the new one behind a
  warm vector cache.

each figure is the median of ROUNDS rounds, the paths interleaved round by round
so a noisy neighbour on a shared machine hurts them alike.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection

import numpy as np
import turbopuffer
from rich.console import Console
from rich.table import Table

from bench.store_baseline import ClientModelsStore, RowByRowStore
from engine.ports import VectorStore
from engine.recommend import recommend
from engine.turbopuffer_store import TurbopufferStore
from engine.types import Vector
from engine.vector_cache import VectorCache

NAMESPACE = "bench-tracks"
API_KEY = "bench"
TRACKS = 2_000
REGIONS = 8
DIMENSIONS = 512
ROUNDS = 5
ROUND_CPU_SECONDS = 0.25
LOOKUP_SIZE = 500
QUERY_TOP_K = 115  # what a default recommend asks per query (engine.recommend)
SIZES = (1, 2, 5, 6, 20, 100, 500)

Call = Callable[[], Awaitable[object]]


def catalogue() -> dict[int, Vector]:
    """TRACKS unit vectors around REGIONS directions; track t sits in region t % REGIONS."""
    rng = np.random.default_rng(20)
    regions = rng.standard_normal((REGIONS, DIMENSIONS)).astype(np.float32)
    vectors: dict[int, Vector] = {}
    for track_id in range(1, TRACKS + 1):
        vector = regions[track_id % REGIONS] * 2.0 + rng.standard_normal(DIMENSIONS)
        vectors[track_id] = (vector / np.linalg.norm(vector)).astype(np.float32)
    return vectors


def playlist(n: int) -> list[int]:
    """n tracks of three regions (0, 3, 5), as a playlist of three moods."""
    ids = [t for t in range(1, TRACKS + 1) if t % REGIONS in (0, 3, 5)]
    return ids[:n]


def _serve(connection: Connection) -> None:
    """the child process: a seeded turbopuffer server until the parent says stop."""
    from bench.loopback.turbopuffer import TurbopufferServer

    server = TurbopufferServer().start_in_thread()
    try:
        server.seed(NAMESPACE, catalogue())
        connection.send(server.base_url)
        connection.recv()
    finally:
        server.stop_thread()


async def cpu_ms_per_call(call: Call, seconds: float = ROUND_CPU_SECONDS) -> float:
    """CPU milliseconds of this process per awaited `call`, over `seconds` of CPU."""
    runs = 0
    started = time.process_time()
    while True:
        await call()
        runs += 1
        elapsed = time.process_time() - started
        if elapsed >= seconds:
            return elapsed / runs * 1e3


async def medians(paths: dict[str, Call]) -> dict[str, float]:
    for call in paths.values():
        await call()  # warm-up: connections, caches
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(ROUNDS):
        for name, call in paths.items():
            samples[name].append(await cpu_ms_per_call(call))
    return {name: statistics.median(values) for name, values in samples.items()}


def lookup_paths(stores: dict[str, VectorStore]) -> dict[str, Call]:
    ids = playlist(LOOKUP_SIZE)

    def call(store: VectorStore) -> Call:
        return lambda: store.get_vectors(ids)

    return {name: call(store) for name, store in stores.items()}


def query_paths(stores: dict[str, VectorStore]) -> dict[str, Call]:
    ids = playlist(LOOKUP_SIZE)
    vectors = catalogue()
    centroids = [
        np.mean([vectors[t] for t in ids if t % REGIONS == region], axis=0).astype(np.float32)
        for region in (0, 3, 5)
    ]

    def call(store: VectorStore) -> Call:
        return lambda: store.query_many(centroids, top_k=QUERY_TOP_K, exclude_ids=ids)

    return {name: call(store) for name, store in stores.items()}


def recommend_paths(stores: dict[str, VectorStore], n: int) -> dict[str, Call]:
    ids = playlist(n)

    def call(store: VectorStore) -> Call:
        return lambda: recommend(ids, store)

    return {name: call(store) for name, store in stores.items()}


def print_table(console: Console, title: str, rows: list[tuple[str, dict[str, float]]]) -> None:
    """one row per case; a ratio against the first column for each other column."""
    names = list(rows[0][1])
    baseline, others = names[0], names[1:]
    table = Table(title=title)
    table.add_column("")
    for name in names:
        table.add_column(name, justify="right")
    for name in others:
        table.add_column(f"{name} / {baseline}", justify="right")
    for label, figures in rows:
        cells = [f"{figures[name]:.2f} ms" for name in names]
        ratios = [f"{figures[name] / figures[baseline]:.2f}" for name in others]
        table.add_row(label, *cells, *ratios)
    console.print(table)


async def run(base_url: str, sizes: list[int], console: Console) -> None:
    async with turbopuffer.AsyncTurbopuffer(api_key=API_KEY, base_url=base_url) as client:
        store = TurbopufferStore(api_key=API_KEY, namespace=NAMESPACE, base_url=base_url)
        cache = VectorCache(store)
        floats = ClientModelsStore(client, NAMESPACE, "float")
        before = ClientModelsStore(client, NAMESPACE, "base64")
        row_by_row = RowByRowStore(api_key=API_KEY, namespace=NAMESPACE, base_url=base_url)
        try:
            lookups = await medians(
                lookup_paths(
                    {
                        "base64, client models (before)": before,
                        "JSON floats, client models": floats,
                        "base64, orjson + pybase64 (now)": store,
                        "vector cache, all cached": cache,
                    }
                )
            )
            print_table(
                console,
                f"client CPU per id lookup of {LOOKUP_SIZE} tracks",
                [(f"{LOOKUP_SIZE} ids", lookups)],
            )
            queries = await medians(
                query_paths(
                    {
                        "client models (before)": before,
                        "orjson, rows one by one": row_by_row,
                        "orjson, rows' fast path (now)": store,
                    }
                )
            )
            print_table(
                console,
                f"client CPU per multi-query (3 x {QUERY_TOP_K}, {LOOKUP_SIZE} ids excluded)",
                [("3 subqueries", queries)],
            )
            rows = []
            for n in sizes:
                stores: dict[str, VectorStore] = {"before": before, "now": store}
                stores["now, vector cache warm"] = cache
                rows.append((f"N={n}", await medians(recommend_paths(stores, n))))
            print_table(console, "client CPU per whole recommend (no catalog)", rows)
        finally:
            await store.aclose()
            await row_by_row.aclose()


def main(sizes: list[int]) -> None:
    console = Console(width=140)
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    server = context.Process(target=_serve, args=(child,), name="turbopuffer-stand-in")
    server.start()
    try:
        base_url = parent.recv()
        with console.status("measuring..."):
            asyncio.run(run(base_url, sizes, console))
    finally:
        parent.send("stop")
        server.join(timeout=10)
        if server.is_alive():
            server.terminate()
            server.join()
