"""`python -m bench floor`: the client-side CPU floor of one recompute, step by step,
beside the whole recompute measured in the same run.

issue 20 asks for <= 5 ms of worker CPU per recompute and reckons its floor at "one
id lookup, one multi-query, one PostgreSQL statement and one Redis transaction".
this measures that floor with the clients the service uses, each step alone, in
this process (time.process_time; PostgreSQL, redis-server and the turbopuffer
stand-in run in processes of their own, `bench.floor_world`):

- turbopuffer: `TurbopufferStore.get_vectors` of the typical playlist's ids and
  `query_many` of its plan (its centroids, the engine's initial top_k, its ids
  excluded); beside each, the same adapter with the SDK's request path swapped for
  a bare aiohttp POST (`BareHttpStore`: the same bodies, the same orjson parse and
  checks), so the ratio is what the SDK costs on top;
- PostgreSQL: `PostgresCatalog.resolve_playlist_and_tracks` and `hydrate` of the
  heads of the multi-query's lists (what `recommend` hydrates first); beside it,
  the hydrate of every candidate (what it hydrated before);
- Redis: the playlist lock's acquire with the reads a recompute queues along (its
  release rides the cache write), a turbopuffer slot taken and given back
  (`SharedStoreBudget`; in a recompute the give rides the write, so this overstates
  it by one ZREM), and the cache write (`RecommendationCache.put`, 35 tracks, the
  state, under a lease);
- docket: a real `docket.Worker`'s CPU per task of K no-op tasks with the recompute
  task's signature and dependencies; the enqueue side (`add_many`, as a reconcile
  pass enqueues) apart, not in the sum: it is the consumer's CPU, not the worker's;
- the engine: `recommend` with the vectors and candidates in hand (`bench.engine_call`);
- the whole: the real `recompute_playlist` through a docket worker on the
  services as `plyr-recs worker` opens them (`open_services`, `installed`), its
  logging configured as the worker's (lines to /dev/null), K playlists a round,
  each a new version of a playlist nothing is cached for;
- the whole, batched: the same K recomputes as the reconcile loop enqueues them,
  `--batch-size` (RECONCILE_BATCH_SIZE's default) to a `recompute_batch` task.

both docket figures are a worker's runs at WORKER_CONCURRENCY's default (10), each
net of an empty run's CPU (start, one look, stop: a running worker pays it once).
at concurrency 1 docket's loop sleeps its check interval (`CHECK_INTERVAL`) after every task,
and its background loops' CPU meanwhile lands on each task (`--concurrency 1`).

glue = whole - sum of the steps: what the recompute costs beyond its required calls.
the host's speed changes by the hour: the yardstick (`bench.yardstick`), sampled
while the run goes on, puts the sum and the whole also at its reference speed.
each figure is the median of `rounds` rounds; a round measures every step in turn
(a step's calls repeated for `round_cpu_seconds` of CPU), then the docket step, then
the whole, so a noisy neighbour on a shared machine hurts them alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import aiohttp
import orjson
import redis.asyncio as aioredis
from docket import Depends, Docket, ExponentialRetry, Timeout, Worker
from rich.console import Console

from bench.engine_call import InHandLookup, InHandStore, run_now
from bench.floor_report import (
    FloorFigures,
    Reference,
    Step,
    floor_table,
    reference_table,
    summary_lines,
)
from bench.floor_world import (
    API_KEY,
    FloorPlaylist,
    FloorServers,
    floor_playlists,
    median_playlist_size,
)
from bench.loopback.pds import list_record_value
from bench.pds_client import CID as RECORD_CID
from bench.pds_client import HttpxPdsRecords
from bench.store import ROUND_CPU_SECONDS, cpu_ms_per_call
from bench.yardstick import Sampler as YardstickSampler
from engine.cache import CachedRecommendations, fingerprint
from engine.postgres_catalog import PostgresCatalog
from engine.recommend import (
    DEFAULT_TOP_N,
    HYDRATE_SLACK,
    initial_top_k,
    plan_for,
    recommend,
    wanted_ids,
)
from engine.turbopuffer_store import TurbopufferStore
from engine.vector_cache import VectorCache
from jetstream.contract import recompute_key
from worker.demo.wire import cid, tid
from worker.processes.event_loop import LoopName, run
from worker.processes.logs import configure_logging
from worker.processes.worker import build_worker
from worker.recs.policy import BACKOFF, TASK_TIMEOUT, ingest_wait_seconds, lease_seconds
from worker.recs.services import Services, current_services, installed, open_services, store_budget
from worker.recs.version import PlaylistVersion
from worker.settings import Settings
from worker.settings.reconcile import DEFAULT_BATCH_SIZE
from worker.store.cache import RecommendationCache
from worker.store.lock import Lease, lock_key, playlist_lock
from worker.tasks.batch import recompute_batch
from worker.tasks.playlist import recompute_playlist
from worker.wiring import connect_redis, open_docket, pds_client

ROUNDS: Final = 5
PLAYLISTS: Final = 100  # recomputes per round of the whole
TASKS: Final = 500  # no-op tasks per round of the docket step
WARM_UP_PLAYLISTS: Final = 5
WORKER_CONCURRENCY: Final = Settings.model_fields["worker_concurrency"].default
IDLE_SECONDS: Final = 1.0  # a running worker with nothing to do, timed this long
REV_BASE: Final = 1 << 41  # above the world's revs (`bench.load.world.REV_BASE`)

Call = Callable[[], Awaitable[object]]


@dataclass(frozen=True)
class FloorOptions:
    rounds: int = ROUNDS
    tracks: int = 0  # 0: the median playlist of `bench scale`'s world
    playlists: int = PLAYLISTS
    tasks: int = TASKS
    # the docket worker's, as `plyr-recs worker`'s default (WORKER_CONCURRENCY). not 1:
    # with every slot busy docket's loop sleeps its check interval (`CHECK_INTERVAL`) before it
    # looks for the next task, and its background loops' CPU meanwhile lands on each task
    concurrency: int = WORKER_CONCURRENCY
    round_cpu_seconds: float = ROUND_CPU_SECONDS
    loop: LoopName = "uvloop"
    # playlists per `recompute_batch` task of the batched whole (RECONCILE_BATCH_SIZE's default)
    batch_size: int = DEFAULT_BATCH_SIZE

    def playlist_size(self) -> int:
        return self.tracks or median_playlist_size()


class BareHttpStore(TurbopufferStore):
    """the adapter with the SDK's request path replaced by one aiohttp POST: the same
    bodies, built and checked by the adapter, the answer parsed by orjson and checked
    as by the adapter. a reference for the benchmark only: no retries, no error types."""

    def __init__(self, *, api_key: str, namespace: str, base_url: str) -> None:
        super().__init__(api_key=api_key, namespace=namespace, base_url=base_url)
        self._url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self._session: aiohttp.ClientSession | None = None

    async def _post(self, call: str, path: str, body: dict[str, Any]) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.post(
            self._url + path, data=orjson.dumps(body), headers=self._headers
        ) as response:
            response.raise_for_status()
            return orjson.loads(await response.read())

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
        await super().aclose()


noop_runs = 0


async def floor_noop(
    playlist_uri: str,
    cid: str,
    rev: str,
    track_uris: list[str],
    refresh: bool = False,
    retry: ExponentialRetry = BACKOFF,
    deadline: Timeout = Timeout(TASK_TIMEOUT),
    lease: float = Depends(lease_seconds),
    ingest_wait: float = Depends(ingest_wait_seconds),
    services: Services = Depends(current_services),
) -> None:
    """nothing, with `recompute_playlist`'s arguments and docket dependencies: docket's
    own work per task as a recompute's."""
    global noop_runs
    noop_runs += 1


def typical_record(playlist: FloorPlaylist) -> dict[str, Any]:
    """the playlist's list record, as its owner's PDS holds it."""
    return list_record_value(playlist.track_uris())


def floor_settings(servers: FloorServers) -> Settings:
    return Settings(
        _env_file=None,
        redis_url=servers.redis.url,
        docket_url=servers.redis.url,
        docket_name=f"floor-{uuid.uuid4().hex[:8]}",
        database_url=servers.database_dsn,
        turbopuffer_api_key=API_KEY,
        turbopuffer_base_url=servers.turbopuffer_url,
        turbopuffer_namespace=servers.namespace,
        pds_allow_private=True,  # the PDS stand-in is on loopback, over http
    )


def quiet_worker_logging(settings: Settings) -> None:
    """logging as `plyr-recs worker` configures it (a line per recompute formatted and
    written: part of its CPU), the lines to /dev/null instead of the console."""
    configure_logging(settings.log_level, log_format=settings.log_format)
    sink = open(os.devnull, "w")  # noqa: SIM115 - the handlers keep it for the process's life
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sink)


@dataclass
class Parts:
    """the steps' calls, ready to repeat, and what they were made of."""

    steps: dict[str, Call]
    references: dict[str, Call]
    # steps a recompute's work takes outside its task: shown, not in the sum
    apart: dict[str, Call]
    pds_before: Call  # the PDS read through the httpx client it had before issue 20
    # the Redis steps through a client packing commands in Python (redis-py's own way)
    python_packed: dict[str, Call]
    hydrate_every: Call  # the hydrate of every candidate (before the heads)
    every_candidate: int
    queries: int
    top_k: int
    candidates: int


async def prepare_parts(
    stack: AsyncExitStack,
    servers: FloorServers,
    settings: Settings,
    services: Services,
    typical: FloorPlaylist,
) -> Parts:
    """open the clients as the service does and run each step once, keeping what the
    next steps are made of (the vectors, the plan, the candidates, the answer)."""
    redis = connect_redis(servers.redis.url)
    stack.push_async_callback(redis.aclose)
    store = TurbopufferStore(
        api_key=API_KEY, namespace=servers.namespace, base_url=servers.turbopuffer_url
    )
    stack.push_async_callback(store.aclose)
    bare = BareHttpStore(
        api_key=API_KEY, namespace=servers.namespace, base_url=servers.turbopuffer_url
    )
    stack.push_async_callback(bare.aclose)
    catalog = await stack.enter_async_context(
        await PostgresCatalog.connect(servers.database_dsn, pool_size=settings.database_pool_size)
    )
    pds = pds_client(settings)  # as the worker's reconcile loop builds it
    stack.push_async_callback(pds.aclose)
    pds_before = HttpxPdsRecords()
    stack.push_async_callback(pds_before.aclose)
    for client in (pds, pds_before):  # opened (session, connection), and read alike
        record = await client.fetch(servers.pds_url, typical.uri)
        if list(record.track_uris) != typical.track_uris():
            raise RuntimeError(f"{type(client).__name__} read the typical record differently")

    ids = list(typical.track_ids)
    uris = typical.track_uris()
    vectors = await store.get_vectors(ids)
    plan = plan_for(vectors, settings.fusion_mode)
    top_k = initial_top_k(DEFAULT_TOP_N)
    lists = await store.query_many(plan.vectors, top_k=top_k, exclude_ids=ids)
    exclude = set(ids)
    # what `recommend` hydrates: the head of each list first (engine.recommend), and
    # beside it every candidate, as it hydrated before (the step's other way)
    every = wanted_ids(lists, exclude, also=plan.stands_for)
    wanted = wanted_ids(lists, exclude, also=plan.stands_for, depth=DEFAULT_TOP_N + HYDRATE_SLACK)
    hydrated = await catalog.hydrate(every)
    playlist, _ = await catalog.resolve_playlist_and_tracks(typical.uri, uris)
    if playlist is None:
        raise RuntimeError(f"the world's playlist {typical.uri} is not in PostgreSQL")
    answer = await recommend(
        ids, store, catalog=catalog, max_per_artist=settings.max_tracks_per_artist
    )
    version = PlaylistVersion(
        playlist.playlist_id, cid("floor:typical"), tid(REV_BASE), playlist.owner_did, tuple(uris)
    )
    value = CachedRecommendations(
        answer.tracks,
        answer.available,
        answer.strategy.value,
        fingerprint(ids),
        datetime.now(UTC).isoformat(),
    )
    state = version.state(ids)
    in_hand = InHandStore(vectors, lists)
    lookup = InHandLookup(hydrated)

    looked = services.recommender.look_keys(version)
    locks = itertools.count()

    async def redis_steps(redis: Any, tag: str) -> dict[str, Call]:
        """the lock, the slot and the write through `redis` (`tag`: keys of its own)."""
        cache = RecommendationCache(
            redis, ttl_seconds=settings.cache_ttl_seconds, list_collection=settings.list_collection
        )

        def along(pipe: Any) -> None:
            cache.queue_before_recompute(pipe, typical.uri, playlist.playlist_id)
            for key in looked:
                pipe.get(key)

        async def lock() -> None:
            # a playlist id of its own per call: the lock is left to its lease, as the
            # recompute's is released by its write (`ends_with_write`), not here
            name = f"{playlist.playlist_id}:floor:{tag}:{next(locks)}"
            async with playlist_lock(
                redis, name, lease_seconds=60.0, along=along, ends_with_write=True
            ) as held:
                held.end.released = True

        budget = store_budget(settings, redis)

        async def slot() -> None:
            async with budget.slot(foreground=False):
                pass

        written = f"{playlist.playlist_id}-floor-write-{tag}"
        lease = Lease(lock_key(written), "floor-lease")
        await redis.set(lease.key, lease.token, ex=24 * 3600)

        async def write() -> None:
            await cache.put(written, version.token, value, state, lease=lease)

        return {"redis.lock": lock, "redis.budget": slot, "redis.write": write}

    # the same three through a client that packs commands as redis-py's asyncio client
    # does by itself (in Python), beside the service's (hiredis: worker.store.redis_packing)
    python_packed = aioredis.Redis.from_url(servers.redis.url)
    stack.push_async_callback(python_packed.aclose)
    ours = await redis_steps(redis, "hiredis")

    async def engine() -> None:
        run_now(
            recommend(
                ids,
                in_hand,
                catalog=lookup,
                fusion=settings.fusion_mode,
                max_per_artist=settings.max_tracks_per_artist,
            )
        )

    return Parts(
        steps={
            "turbopuffer.get_vectors": lambda: store.get_vectors(ids),
            "turbopuffer.query_many": lambda: store.query_many(
                plan.vectors, top_k=top_k, exclude_ids=ids
            ),
            "postgres.resolve": lambda: catalog.resolve_playlist_and_tracks(typical.uri, uris),
            "postgres.hydrate": lambda: catalog.hydrate(wanted),
            **ours,
            "engine": engine,
        },
        python_packed=await redis_steps(python_packed, "python"),
        hydrate_every=lambda: catalog.hydrate(every),
        every_candidate=len(every),
        apart={"pds.fetch": lambda: pds.fetch(servers.pds_url, typical.uri)},
        pds_before=lambda: pds_before.fetch(servers.pds_url, typical.uri),
        references={
            "turbopuffer.get_vectors": lambda: bare.get_vectors(ids),
            "turbopuffer.query_many": lambda: bare.query_many(
                plan.vectors, top_k=top_k, exclude_ids=ids
            ),
        },
        queries=len(plan.vectors),
        top_k=top_k,
        candidates=len(wanted),
    )


async def run_worker(worker: Worker) -> None:
    """the worker's run until nothing is left. docket's loop takes a cancel (Ctrl-C,
    SIGTERM) as a request to stop and returns: passed on here, so the benchmark stops
    (and stops its servers) instead of starting its next round."""
    await worker.run_until_finished()
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def empty_run(worker: Worker) -> float:
    """CPU seconds of a worker's run with nothing to do: its start, one look, its stop.
    a running worker pays it once, not per task: taken out of the runs below."""
    started = time.process_time()
    await run_worker(worker)
    return time.process_time() - started


async def docket_round(
    docket: Docket, worker: Worker, typical: FloorPlaylist, tasks: int, tag: str
) -> tuple[float, float]:
    """(µs to enqueue, µs of the worker's run) per no-op task, over `tasks` of them
    (the run net of an empty run's)."""
    args = (typical.uri, cid(f"floor:noop:{tag}"), tid(REV_BASE), typical.track_uris())
    before = noop_runs
    idle = await empty_run(worker)  # before anything is queued
    now = datetime.now(UTC)
    started = time.process_time()
    calls = [docket.call(floor_noop, now, f"floor-noop:{tag}:{i}")(*args) for i in range(tasks)]
    await docket.add_many(calls)
    enqueued = time.process_time() - started
    started = time.process_time()
    await run_worker(worker)
    ran = time.process_time() - started - idle
    if noop_runs - before != tasks:
        raise RuntimeError(f"{noop_runs - before} of {tasks} no-op tasks ran")
    return enqueued / tasks * 1e6, ran / tasks * 1e6


async def whole_round(
    docket: Docket,
    worker: Worker,
    services: Services,
    playlists: Sequence[FloorPlaylist],
    round_index: int,
) -> tuple[float, float]:
    """(µs of CPU per recompute, seconds of wall time) of a run of `playlists` (the CPU
    net of an empty run's), each a new version of a playlist nothing is cached for
    (forgotten first) and whose vectors the process has not seen."""
    for playlist in playlists:
        await services.cache.forget(playlist.known.playlist_id, playlist_uri=playlist.uri)
    if isinstance(services.store, VectorCache):
        services.store.forget()
    idle = await empty_run(worker)  # before anything is queued
    now = datetime.now(UTC)
    rev = tid(REV_BASE + 1 + round_index)
    calls = [
        docket.call(recompute_playlist, now, recompute_key(playlist.uri))(
            playlist.uri, cid(f"floor:{round_index}:{i}"), rev, playlist.track_uris()
        )
        for i, playlist in enumerate(playlists)
    ]
    await docket.add_many(calls)
    before = services.counts["recompute:computed"]
    started, wall_started = time.process_time(), time.monotonic()
    await run_worker(worker)
    ran = time.process_time() - started - idle
    wall = time.monotonic() - wall_started
    computed = services.counts["recompute:computed"] - before
    if computed != len(playlists):
        raise RuntimeError(
            f"{computed} of {len(playlists)} recomputes computed: {dict(services.counts)}"
        )
    return ran / len(playlists) * 1e6, wall


async def batched_round(
    docket: Docket,
    worker: Worker,
    services: Services,
    playlists: Sequence[FloorPlaylist],
    round_index: int,
    batch_size: int,
) -> float:
    """µs of CPU per recompute of the same playlists as `whole_round`'s, each a new
    version nothing is cached for, `batch_size` to a `recompute_batch` task: the
    reconcile loop's way (the CPU net of an empty run's)."""
    for playlist in playlists:
        await services.cache.forget(playlist.known.playlist_id, playlist_uri=playlist.uri)
    if isinstance(services.store, VectorCache):
        services.store.forget()
    idle = await empty_run(worker)
    now = datetime.now(UTC)
    rev = tid(REV_BASE + 1 + round_index)
    items = [
        [playlist.uri, cid(f"floor:batched:{round_index}:{i}"), rev, playlist.track_uris(), False]
        for i, playlist in enumerate(playlists)
    ]
    calls = [
        docket.call(recompute_batch, now)(items[start : start + batch_size])
        for start in range(0, len(items), batch_size)
    ]
    await docket.add_many(calls)
    before = services.counts["recompute:computed"]
    started = time.process_time()
    await run_worker(worker)
    ran = time.process_time() - started - idle
    computed = services.counts["recompute:computed"] - before
    if computed != len(playlists) or services.counts["batch:handed_off"]:
        raise RuntimeError(
            f"{computed} of {len(playlists)} batched recomputes computed: {dict(services.counts)}"
        )
    return ran / len(playlists) * 1e6


async def idle_cpu_per_second(worker: Worker, seconds: float = IDLE_SECONDS) -> float:
    """CPU seconds a second of a running worker with nothing to do (its polling, the
    scheduler, the lease renewal, the heartbeat): what its waits between tasks cost."""
    running = asyncio.create_task(worker.run_forever())
    await asyncio.sleep(0.2)  # past its start
    started = time.process_time()
    await asyncio.sleep(seconds)
    spent = time.process_time() - started
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
    return spent / seconds


def labels(tracks: int, parts: Parts) -> dict[str, str]:
    return {
        "turbopuffer.get_vectors": f"turbopuffer: id lookup of {tracks} ids",
        "turbopuffer.query_many": (
            f"turbopuffer: multi-query, {parts.queries} x top_k {parts.top_k}, "
            f"{tracks} ids excluded"
        ),
        "postgres.resolve": "PostgreSQL: the playlist and its tracks",
        "postgres.hydrate": f"PostgreSQL: hydrate the lists' heads, {parts.candidates} ids",
        "redis.lock": "Redis: the lock, with the first reads along",
        "redis.budget": "Redis: a turbopuffer slot, take + give back",
        "redis.write": "Redis: the cache write (35 tracks, state, lease)",
        "docket.run": "docket: a worker's run of a task (no-op)",
        "engine": f"engine: recommend, vectors in hand ({tracks} tracks)",
        "docket.enqueue": "docket: enqueue a task (add_many; the enqueuer's CPU)",
        "pds.fetch": (
            "PDS: getRecord of the playlist's record (a cold deploy's or a refresh's "
            "read, in the reconcile pass, not in the task)"
        ),
    }


async def measure(options: FloorOptions, console: Console) -> FloorFigures:
    tracks = options.playlist_size()
    playlists = floor_playlists(options.playlists, tracks)
    typical = playlists[0]
    console.print(
        "floor: starting PostgreSQL (bench scale's world), redis-server and the "
        "turbopuffer stand-in..."
    )
    async with (
        YardstickSampler() as sampler,
        FloorServers(records={typical.uri: (RECORD_CID, typical_record(typical))}) as servers,
        AsyncExitStack() as stack,
    ):
        settings = floor_settings(servers)
        quiet_worker_logging(settings)
        services = await stack.enter_async_context(open_services(settings))
        docket = await stack.enter_async_context(open_docket(settings))
        docket.register(floor_noop)
        worker = await stack.enter_async_context(
            build_worker(docket, concurrency=options.concurrency)
        )
        stack.enter_context(installed(services))
        parts = await prepare_parts(stack, servers, settings, services, typical)

        console.print("floor: warming up (every step once, a few tasks, a few recomputes)")
        for call in (
            *parts.steps.values(),
            *parts.references.values(),
            *parts.python_packed.values(),
            parts.hydrate_every,
        ):
            await call()
        await docket_round(docket, worker, typical, WARM_UP_PLAYLISTS, "warm")
        await whole_round(docket, worker, services, playlists[:WARM_UP_PLAYLISTS], -1)
        await batched_round(
            docket, worker, services, playlists[:WARM_UP_PLAYLISTS], -2, options.batch_size
        )
        await idle_cpu_per_second(worker, 0.2)

        samples: dict[str, list[float]] = {}
        for index in range(options.rounds):
            console.print(
                f"floor: round {index + 1}/{options.rounds}: the steps, {options.tasks} "
                f"no-op tasks, {options.playlists} recomputes"
            )
            for prefix, calls in (
                ("", parts.steps),
                ("bare:", parts.references),
                ("", parts.apart),
                ("python_packed:", parts.python_packed),
            ):
                for key, call in calls.items():
                    ms = await cpu_ms_per_call(call, options.round_cpu_seconds)
                    samples.setdefault(prefix + key, []).append(ms * 1e3)
            ms = await cpu_ms_per_call(parts.pds_before, options.round_cpu_seconds)
            samples.setdefault("pds_before", []).append(ms * 1e3)
            ms = await cpu_ms_per_call(parts.hydrate_every, options.round_cpu_seconds)
            samples.setdefault("hydrate_every", []).append(ms * 1e3)
            enqueue, ran = await docket_round(docket, worker, typical, options.tasks, str(index))
            samples.setdefault("docket.enqueue", []).append(enqueue)
            samples.setdefault("docket.run", []).append(ran)
            whole, wall = await whole_round(docket, worker, services, playlists, index)
            samples.setdefault("whole", []).append(whole)
            batched = await batched_round(
                docket, worker, services, playlists, index, options.batch_size
            )
            samples.setdefault("whole_batched", []).append(batched)
            samples.setdefault("wall", []).append(wall)
            rate = await idle_cpu_per_second(worker)
            samples.setdefault("idle", []).append(rate * wall / options.playlists * 1e6)

    host = sampler.host()
    medians = {key: statistics.median(values) for key, values in samples.items()}
    names = labels(tracks, parts)
    order = [key for key in parts.steps if key != "engine"] + ["docket.run", "engine"]
    steps = [Step(key, names[key], 1, medians[key]) for key in order]
    steps.append(
        Step("docket.enqueue", names["docket.enqueue"], 1, medians["docket.enqueue"], False)
    )
    steps.extend(Step(key, names[key], 1, medians[key], False) for key in parts.apart)
    references = [
        Reference(key, names[key], medians[key], medians[f"bare:{key}"]) for key in parts.references
    ]
    return FloorFigures(
        tracks=tracks,
        queries=parts.queries,
        top_k=parts.top_k,
        candidates=parts.candidates,
        every_candidate=parts.every_candidate,
        hydrate_every_us=medians["hydrate_every"],
        playlists=options.playlists,
        tasks=options.tasks,
        rounds=options.rounds,
        concurrency=options.concurrency,
        loop=options.loop,
        whole_us=medians["whole"],
        idle_us=medians["idle"],
        whole_wall_seconds=medians["wall"],
        steps=steps,
        references=references,
        host=host,
        pds_before_us=medians["pds_before"],
        whole_batched_us=medians["whole_batched"],
        python_packed_us={key: medians[f"python_packed:{key}"] for key in parts.python_packed},
        batch_size=options.batch_size,
    )


def main(options: FloorOptions, *, json_path: Path | None = None) -> None:
    console = Console(width=140)
    figures = run(measure(options, console), loop=options.loop)
    console.print(floor_table(figures))
    console.print(reference_table(figures))
    for line in summary_lines(figures):
        console.print(line)
    if json_path is not None:
        json_path.write_bytes(orjson.dumps(figures.to_json(), option=orjson.OPT_INDENT_2))
