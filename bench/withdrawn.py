"""`python -m bench withdrawn`: how fast a taken-down track leaves every answer, what
the check round costs, and what screening costs a cache hit.

what runs: a real PostgreSQL (the schema, a generated catalogue) and redis-server on
loopback, in this process a docket worker with the withdrawal check scheduled as
`plyr-recs worker` schedules it (every WITHDRAWAL_CHECK_SECONDS) and the API over
its ASGI app; for the hit figures, two API processes under uvicorn (one screening,
one not: `bench.api_server`) on one Redis, measured in alternating windows.

1. takedowns: `moderation_override = 'takedown'` set on a track carried by several
   cached answers, while their playlists are asked for in a loop; the time from
   the UPDATE's commit to the last answer that still carried the track.
2. the round: 100,000 cached answers indexed as the worker indexes them; the round's
   time with nothing withdrawn and with ten takedowns, beside the one query alone.
3. hits: p50/p99 of cache hits at 16 clients, screening against not screening.
"""

from __future__ import annotations

import asyncio
import hashlib
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, Final

import asyncpg
import numpy as np
import redis.asyncio as aioredis
from docket import Docket
from pydantic import SecretStr
from rich.console import Console

from bench.loopback.servers import PostgresServer, RedisServer, free_port
from engine.cache import CachedRecommendations
from engine.exact_store import ExactStore
from engine.keys import WITHDRAWAL_LIVE_KEY
from engine.postgres_catalog import PostgresCatalog
from engine.schema import schema_sql
from engine.types import Track
from worker.recs.version import PlaylistVersion, rev_at

TRACKS: Final = 20_000
ARTISTS: Final = 400
PLAYLISTS: Final = 300
DIMENSIONS: Final = 64  # the store only ranks here: a smaller embedding keeps it light
REGIONS: Final = 24
TOKEN: Final = "bench-withdrawn-token"
GOAL_SECONDS: Final = 5.0
GOAL_HIT_RATIO: Final = 1.10
POLL_TIMEOUT_SECONDS: Final = 30.0


def _did(prefix: str, index: int) -> str:
    digest = hashlib.sha256(f"{prefix} {index}".encode()).digest()
    return "did:plc:" + "".join("abcdefghijklmnopqrstuvwxyz234567"[b % 32] for b in digest[:24])


def _track_uri(track_id: int) -> str:
    return f"at://{_did('artist', track_id % ARTISTS)}/fm.plyr.track/3t{track_id:08d}"


async def _load_catalogue(dsn: str, playlists: list[tuple[str, str, list[int]]]) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(schema_sql())
        artists = [(_did("artist", i), f"artist{i}.test", f"artist {i}") for i in range(ARTISTS)]
        await connection.copy_records_to_table(
            "artists", records=artists, columns=["did", "handle", "display_name"]
        )
        await connection.copy_records_to_table(
            "tracks",
            records=[
                (t, f"track {t}", _did("artist", t % ARTISTS), _track_uri(t)) for t in range(TRACKS)
            ],
            columns=["id", "title", "artist_did", "atproto_record_uri"],
        )
        await connection.copy_records_to_table(
            "playlists",
            records=[(pid, owner, "bench", True) for pid, owner, _ in playlists],
            columns=["id", "owner_did", "name", "is_private"],
        )
    finally:
        await connection.close()


def _world() -> tuple[ExactStore, list[tuple[str, str, list[int]]]]:
    rng = np.random.default_rng(20261212)
    regions = rng.standard_normal((REGIONS, DIMENSIONS)).astype(np.float32)
    vectors = regions[np.arange(TRACKS) % REGIONS] * 3.0 + rng.standard_normal(
        (TRACKS, DIMENSIONS)
    ).astype(np.float32)
    playlists = []
    for index in range(PLAYLISTS):
        region = int(rng.integers(REGIONS))
        members = rng.choice(np.arange(region, TRACKS, REGIONS), size=12, replace=False)
        playlists.append(
            (
                str(uuid.UUID(int=index + 1)),
                _did("artist", index % ARTISTS),
                list(map(int, members)),
            )
        )
    return ExactStore(np.arange(TRACKS), vectors), playlists


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def _takedowns(
    console: Console, postgres: PostgresServer, redis_url: str, count: int, at_once: int
) -> list[float]:
    from bench.loopback.asgi import app_client
    from worker.api.app import create_app
    from worker.identity.auth import Authenticator
    from worker.processes.worker import build_worker
    from worker.recs.services import installed, open_services
    from worker.settings import Settings
    from worker.store.withdrawn import WithdrawalIndex, carriers_key, playlist_of

    store, playlists = _world()
    dsn = postgres.dsn()
    await _load_catalogue(dsn, playlists)
    settings = Settings(
        _env_file=None,
        redis_url=redis_url,
        database_url=dsn,
        internal_api_token=SecretStr(TOKEN),
        docket_url=redis_url,
        docket_name=f"bench-{uuid.uuid4().hex[:6]}",
    )
    async with AsyncExitStack() as stack:
        services = await stack.enter_async_context(open_services(settings, store=store))
        # the private playlists' items come from plyr.fm's row: the bench sets them here
        connection = await asyncpg.connect(dsn)
        for pid, _, members in playlists:
            items = "[" + ",".join(f'{{"uri": "{_track_uri(t)}"}}' for t in members) + "]"
            await connection.execute(
                "UPDATE playlists SET items_json = $2::jsonb WHERE id = $1", pid, items
            )
        await connection.close()
        owners = {pid: owner for pid, owner, _ in playlists}
        rows = {pid: await services.catalog.get_playlist(pid) for pid, _, _ in playlists}
        tokens = {}
        for pid, row in rows.items():
            assert row is not None
            tokens[pid] = row.updated_at.isoformat()
            uris = list(row.items or ())
            await services.recommender.ensure(
                PlaylistVersion(pid, tokens[pid], rev_at(row.updated_at), owners[pid], tuple(uris)),
                lease=None,
            )
        docket = await stack.enter_async_context(
            Docket(name=settings.docket_name, url=settings.docket_url)
        )
        worker = await stack.enter_async_context(
            build_worker(docket, concurrency=8, automatic=True, reconcile=False)
        )
        stack.enter_context(installed(services))
        running = asyncio.create_task(worker.run_forever())
        authenticator = Authenticator.from_settings(settings)
        stack.push_async_callback(authenticator.aclose)
        client = await stack.enter_async_context(app_client(create_app(services, authenticator)))

        live, _, _ = await WithdrawalIndex(services.redis).round_inputs()
        carried: dict[int, list[str]] = {}
        for track_id in live:
            members = await services.redis.zrange(carriers_key(track_id), 0, -1)
            carried[track_id] = [playlist_of(m) for m in members]
        targets = sorted(carried, key=lambda t: -len(carried[t]))[:count]
        console.print(
            f"{len(playlists)} playlists cached over {TRACKS:,} tracks; {count} takedowns, "
            f"{at_once} at a time, each carried by {min(len(carried[t]) for t in targets)}.."
            f"{max(len(carried[t]) for t in targets)} answers"
        )
        await asyncio.sleep(2.0)  # a round or two first: the API's copy is covered

        async def one(track_id: int) -> float:
            async with _conn(dsn) as conn:
                await conn.execute(
                    "UPDATE tracks SET moderation_override = 'takedown' WHERE id = $1", track_id
                )
            committed = time.perf_counter()
            last_seen = committed
            deadline = committed + POLL_TIMEOUT_SECONDS
            while time.perf_counter() < deadline:
                still = False
                for pid in carried[track_id]:
                    response = await client.get(
                        f"/playlists/{pid}/recommendations",
                        params={"limit": 10},
                        headers={"X-Internal-Token": TOKEN, "X-Viewer-Did": owners[pid]},
                    )
                    if track_id in {t["id"] for t in response.json()["tracks"]}:
                        still = True
                        last_seen = time.perf_counter()
                if not still:
                    return last_seen - committed
            raise RuntimeError(f"track {track_id} was still served after {POLL_TIMEOUT_SECONDS}s")

        latencies: list[float] = []
        for start in range(0, len(targets), at_once):
            latencies += await asyncio.gather(*(one(t) for t in targets[start : start + at_once]))
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    return latencies


class _conn:
    """an asyncpg connection as an async context manager."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    async def __aenter__(self) -> asyncpg.Connection[asyncpg.Record]:
        self.connection = await asyncpg.connect(self.dsn)
        return self.connection

    async def __aexit__(self, *_: object) -> None:
        await self.connection.close()


async def _round_cost(
    console: Console, postgres: PostgresServer, redis_url: str, answers: int
) -> dict[str, Any]:
    """the round over `answers` cached answers (the catalogue of part 1 in PostgreSQL)."""
    from worker.recs.services import open_services
    from worker.settings import Settings
    from worker.store import withdrawn
    from worker.tasks.withdrawals import check_round

    redis = aioredis.Redis.from_url(redis_url)
    await redis.flushall()
    rng = np.random.default_rng(7)
    settings = Settings(_env_file=None, redis_url=redis_url, docket_url=redis_url)
    catalog = await PostgresCatalog.connect(postgres.dsn(), pool_size=2, timeout=30.0)
    before = int((await redis.info("memory"))["used_memory"])
    started = time.perf_counter()
    # the index `withdrawn.register` builds answer by answer, built here in bulk (the
    # same keys, members and scores; one command per key instead of three per track)
    expires = withdrawn.expiry_score(time.time(), 86_400)
    carriers: dict[int, dict[bytes, int]] = {}
    batch = 2000
    for first in range(0, answers, batch):
        async with redis.pipeline(transaction=False) as pipe:
            for n in range(first, min(first + batch, answers)):
                members = [int(t) for t in rng.choice(TRACKS, size=15, replace=False)]
                value = CachedRecommendations(
                    [Track(t, f"track {t}", "a", "a", None) for t in members], True
                )
                playlist_id = str(uuid.UUID(int=10_000_000 + n))
                pipe.set(f"plyr:recommendations:{playlist_id}:cid", value.to_json(), ex=86_400)
                member = withdrawn.carrier_member(playlist_id)
                for track_id in members:
                    carriers.setdefault(track_id, {})[member] = expires
            await pipe.execute()
    await redis.zadd(WITHDRAWAL_LIVE_KEY, {str(t): expires for t in carriers})
    await redis.expire(WITHDRAWAL_LIVE_KEY, 86_400)
    tracks = list(carriers.items())
    for first in range(0, len(tracks), 200):
        async with redis.pipeline(transaction=False) as pipe:
            for track_id, members_of in tracks[first : first + 200]:
                pipe.zadd(withdrawn.carriers_key(track_id), members_of)
                pipe.expire(withdrawn.carriers_key(track_id), 86_400)
            await pipe.execute()
    filled = time.perf_counter() - started
    after = int((await redis.info("memory"))["used_memory"])
    result: dict[str, Any] = {"answers": answers, "fill_seconds": filled}
    result["memory_mb"] = (after - before) / 1e6
    async with (
        open_services(settings, redis=redis, catalog=catalog, store=None) as services,
        Docket(name=f"bench-{uuid.uuid4().hex[:6]}", url=redis_url) as docket,
    ):
        live, _, _ = await withdrawn.WithdrawalIndex(redis).round_inputs()
        result["live_tracks"] = len(live)
        query = []
        for _ in range(10):
            t0 = time.perf_counter()
            await catalog.eligible_ids(sorted(live))
            query.append(time.perf_counter() - t0)
        steady = []
        for _ in range(20):
            steady.append((await check_round(services, docket)).seconds)
        with_takedowns = []
        refills = []
        for k in range(3):
            picked = [int(t) for t in rng.choice(TRACKS, size=10, replace=False)]
            async with _conn(postgres.dsn()) as conn:
                await conn.execute(
                    "UPDATE tracks SET moderation_override = 'takedown' WHERE id = ANY($1)", picked
                )
            t0 = time.perf_counter()
            report = await check_round(services, docket)
            with_takedowns.append((report.seconds, time.perf_counter() - t0))
            refills.append(report.refills)
            del k
        result.update(query=query, steady=steady, takedowns=with_takedowns, refills=refills)
    await catalog.aclose()
    await redis.flushall()
    await redis.aclose()
    return result


def _start_api_servers(redis_url: str) -> tuple[dict[str, int], list[subprocess.Popen[bytes]]]:
    """two API processes on one Redis: one screening against withdrawals, one not."""
    ports = {"screened": free_port(), "unscreened": free_port()}
    command = [sys.executable, "-m", "bench.api_server"]
    servers = [
        subprocess.Popen([*command, str(ports["screened"]), redis_url, "200"]),
        subprocess.Popen([*command, str(ports["unscreened"]), redis_url, "200", "unscreened"]),
    ]
    return ports, servers


async def _hits(
    redis_url: str, ports: dict[str, int], seconds: float, windows: int, clients: int
) -> dict[str, list[Any]]:
    """the two API processes on one warm cache, alternating windows; a check round
    runs here every second, as a worker would, so the screening one serves hits from
    its copy (covered), not by asking the catalogue."""
    from bench.api import _closed_loop, _wait_until_serving, hit_request
    from bench.api_server import bench_playlists, bench_world
    from worker.recs.services import open_services
    from worker.settings import Settings
    from worker.tasks.withdrawals import check_round

    playlists = bench_playlists(200)
    catalog, _ = bench_world(playlists)
    settings = Settings(_env_file=None, redis_url=redis_url)
    results: dict[str, list[Any]] = {"screened": [], "unscreened": []}
    for port in ports.values():
        await _wait_until_serving(port)
    async with (
        open_services(settings, catalog=catalog, store=None) as services,
        Docket(name=f"bench-{uuid.uuid4().hex[:6]}", url=redis_url) as docket,
    ):

        async def rounds() -> None:
            while True:
                await check_round(services, docket)
                await asyncio.sleep(1.0)

        ticking = asyncio.create_task(rounds())
        await asyncio.sleep(0.5)
        requests = [hit_request(playlist) for playlist in playlists]
        for window in range(windows):
            order = ["screened", "unscreened"] if window % 2 == 0 else ["unscreened", "screened"]
            for name in order:
                level = await _closed_loop("hits", ports[name], requests, clients, seconds)
                results[name].append(level)
        ticking.cancel()
        await asyncio.gather(ticking, return_exceptions=True)
    return results


def main(
    *, takedowns: int = 50, at_once: int = 5, answers: int = 100_000, seconds: float = 3.0
) -> None:
    console = Console()
    with tempfile.TemporaryDirectory(prefix="plyr-bench-withdrawn-") as directory:
        redis_server = RedisServer(Path(directory) / "redis")
        postgres = PostgresServer()
        redis_server.start()
        postgres.start()
        try:
            latencies = asyncio.run(
                _takedowns(console, postgres, redis_server.url, takedowns, at_once)
            )
            _report_takedowns(console, latencies)
            cost = asyncio.run(_round_cost(console, postgres, redis_server.url, answers))
            _report_round(console, cost)
            ports, servers = _start_api_servers(redis_server.url)
            try:
                hits = asyncio.run(_hits(redis_server.url, ports, seconds, windows=4, clients=16))
            finally:
                for server in servers:
                    server.terminate()
                    server.wait(timeout=10)
        finally:
            postgres.cleanup()
            redis_server.stop()
    _report_hits(console, hits)


def _ms(values: Sequence[float]) -> str:
    return f"p50 {_pct(values, 0.5) * 1e3:.1f} ms, p99 {_pct(values, 0.99) * 1e3:.1f} ms"


def _report_takedowns(console: Console, latencies: list[float]) -> None:
    p50, p99 = _pct(latencies, 0.5), _pct(latencies, 0.99)
    verdict = "met" if p99 <= GOAL_SECONDS else "missed"
    console.print(
        f"1. takedown -> last answer carrying the track, over {len(latencies)} takedowns: "
        f"p50 {p50:.2f} s, p99 {p99:.2f} s, max {max(latencies):.2f} s "
        f"(goal <= {GOAL_SECONDS:.0f} s: {verdict})"
    )


def _report_round(console: Console, cost: dict[str, Any]) -> None:
    console.print(
        f"2. {cost['answers']:,} cached answers indexed in {cost['fill_seconds']:.1f} s, "
        f"index + entries {cost['memory_mb']:.0f} MB in Redis, {cost['live_tracks']:,} "
        f"distinct live tracks"
    )
    console.print(
        f"   the one query alone (eligible_ids of every live track): {_ms(cost['query'])}"
    )
    console.print(f"   a round, nothing withdrawn (20 rounds): {_ms(cost['steady'])}")
    detect = [pair[0] for pair in cost["takedowns"]]
    whole = [pair[1] for pair in cost["takedowns"]]
    console.print(
        f"   a round with 10 takedowns (3 rounds): to the set published {_ms(detect)}; "
        f"with its refills enqueued {_ms(whole)} ({', '.join(map(str, cost['refills']))} refills)"
    )


def _report_hits(console: Console, hits: dict[str, list[Any]]) -> None:
    p99s = {name: [level.percentile(0.99) for level in levels] for name, levels in hits.items()}
    p50s = {name: [level.percentile(0.5) for level in levels] for name, levels in hits.items()}
    rps = {name: [level.rps for level in levels] for name, levels in hits.items()}
    failures = {name: sum(level.failures for level in levels) for name, levels in hits.items()}
    screened, unscreened = (
        statistics.median(p99s["screened"]),
        statistics.median(p99s["unscreened"]),
    )
    ratio = screened / unscreened
    console.print(
        "3. cache hits, 16 clients, uvicorn, alternating windows "
        f"({len(p99s['screened'])} each): screened p50 "
        f"{statistics.median(p50s['screened']):.2f} ms "
        f"p99 {screened:.2f} ms {statistics.median(rps['screened']):,.0f} req/s; unscreened p50 "
        f"{statistics.median(p50s['unscreened']):.2f} ms p99 {unscreened:.2f} ms "
        f"{statistics.median(rps['unscreened']):,.0f} req/s; p99 ratio {ratio:.2f} "
        f"(goal <= {GOAL_HIT_RATIO:.2f}: {'met' if ratio <= GOAL_HIT_RATIO else 'missed'}); "
        f"per window p99 screened {[round(v, 2) for v in p99s['screened']]}, unscreened "
        f"{[round(v, 2) for v in p99s['unscreened']]}; failures {failures}"
    )
