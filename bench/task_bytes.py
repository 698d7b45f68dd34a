"""`python -m bench task-bytes`: how much Redis grows while many accounts, each at the
allowed pace, create playlists plyr.fm never ingests (issue 23, finding 3).

real parts on loopback: a redis-server holding docket and the consumer's state, the
real consumer (default flood limits) reading a replay server to which every
account appends one new full playlist a second (`JETSTREAM_DID_CHANGES_PER_MINUTE`
is 60), docket with the production `EXECUTION_TTL`, and a docket worker running the
real `recompute_playlist` (`PLAYLIST_WAIT_SECONDS` 120) over a catalog that knows
none of the playlists: every task waits and retries for the ingest.

the baseline in the same run is the bound the flood control promises: Redis bytes
for tasks <= 4 x `JETSTREAM_MAX_PENDING_BYTES` + 4 KiB per task (README, "Redis
bytes"); before issue 23's fix the growth passed it and kept climbing (~1.5 MB/s
for 10 accounts), now it levels off once each account's held bytes reach
`JETSTREAM_DID_MAX_PENDING_BYTES`. run the same file against an older tree to
compare (it reads only what every version has).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import fakeredis
import numpy as np
import redis.asyncio as aioredis
from docket import Docket

from bench.loopback.servers import RedisServer
from engine.exact_store import ExactStore
from engine.memory_catalog import InMemoryCatalog
from jetstream import ConsumerConfig, JetstreamConsumer, ReplayServer
from jetstream.contract import EXECUTION_TTL
from jetstream.flood import FloodLimits
from worker.demo.wire import cid, did, list_commit, tid, track_uri
from worker.processes.logs import configure_logging
from worker.processes.worker import build_worker
from worker.recs.services import Services, installed, open_services
from worker.settings import Settings

MB = 1_000_000


@dataclass(frozen=True)
class Scenario:
    accounts: int
    seconds: float
    tracks: int
    sample: float


def _commit(owner: int, n: int, tracks: int) -> bytes:
    return list_commit(
        owner=did(owner),
        rkey=tid(n),
        rev=tid(n),
        record_cid=cid(f"{owner}/{n}"),
        tracks=[track_uri(owner * 100_000 + n * 1_000 + i) for i in range(tracks)],
        time_us=int(time.time() * 1_000_000),
    )


async def _used(redis: aioredis.Redis) -> int:
    return int((await redis.info("memory"))["used_memory"])


async def run(*, accounts: int, seconds: float, tracks: int, sample: float) -> None:
    limits = FloodLimits()
    with tempfile.TemporaryDirectory() as directory:
        server = RedisServer(Path(directory) / "redis")
        server.start()
        redis = aioredis.Redis.from_url(server.url)
        try:
            async with (
                Docket(name="bench-task-bytes", url=server.url, execution_ttl=EXECUTION_TTL) as dk,
                open_services(
                    Settings(_env_file=None, playlist_wait_seconds=120.0),
                    redis=fakeredis.FakeAsyncRedis(),
                    catalog=InMemoryCatalog(),
                    store=ExactStore(np.array([1]), np.ones((1, 8), dtype=np.float32)),
                ) as services,
                ReplayServer([]) as replay,
            ):
                scenario = Scenario(accounts, seconds, tracks, sample)
                await _measure(redis, dk, services, replay, limits, scenario)
        finally:
            await redis.aclose()
            server.stop()


async def _measure(
    redis: aioredis.Redis,
    docket: Docket,
    services: Services,
    replay: ReplayServer,
    limits: FloodLimits,
    scenario: Scenario,
) -> None:
    accounts, seconds, tracks, sample = (
        scenario.accounts,
        scenario.seconds,
        scenario.tracks,
        scenario.sample,
    )
    from worker.tasks.playlist import PLAYLIST_TASKS

    consumer = JetstreamConsumer(
        config=ConsumerConfig(hosts=(replay.url,), flood=limits),
        redis=redis,
        docket=docket,
        tasks=PLAYLIST_TASKS,
    )
    worker = build_worker(docket, concurrency=10)
    worker.minimum_check_interval = timedelta(milliseconds=50)
    worker.scheduling_resolution = timedelta(milliseconds=50)
    stop = asyncio.Event()
    before = await _used(redis)
    print(
        f"{accounts} accounts, one new {tracks}-track playlist each a second (the allowed "
        f"pace), plyr.fm ingests none; bound: 4 x {limits.max_total_pending_bytes / MB:.0f} MB "
        "+ 4 KiB per task"
    )
    print(f"{'t (s)':>6} {'Redis +MB':>10} {'enqueued':>9} {'shed':>6} {'held MB':>8} {'waits':>6}")
    consuming = asyncio.create_task(consumer.run(stop))
    with installed(services):
        async with worker:
            working = asyncio.create_task(worker.run_forever())
            started = time.monotonic()
            next_sample = sample
            n = 0
            peak = 0
            try:
                while (elapsed := time.monotonic() - started) < seconds:
                    n += 1
                    replay.append(_commit(owner, n, tracks) for owner in range(accounts))
                    if elapsed >= next_sample:
                        next_sample += sample
                        grown = await _used(redis) - before
                        peak = max(peak, grown)
                        stats = consumer.stats
                        held = getattr(stats, "task_bytes_held", None)
                        print(
                            f"{elapsed:6.0f} {grown / MB:10.1f} {stats.recomputes:9d} "
                            f"{stats.skipped['flood_shed']:6d} "
                            f"{'-' if held is None else f'{held / MB:.1f}':>8} "
                            f"{services.counts['waiting:unknown_playlist']:6d}"
                        )
                    await asyncio.sleep(max(0.0, n - (time.monotonic() - started)))
            finally:
                stop.set()
                working.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await working
                await consuming
    grown = max(peak, await _used(redis) - before)
    bound = 4 * limits.max_total_pending_bytes
    print(
        f"peak Redis growth {grown / MB:.1f} MB over {seconds:.0f} s; "
        f"{grown / bound:.2f}x the bound's 4 x total ({bound / MB:.0f} MB); "
        f"failed:unexpected {services.counts['failed:unexpected']}"
    )


def main(*, accounts: int, seconds: float, tracks: int, sample: float) -> None:
    configure_logging("ERROR")  # as the worker does: a wait for the ingest is no error
    asyncio.run(run(accounts=accounts, seconds=seconds, tracks=tracks, sample=sample))
