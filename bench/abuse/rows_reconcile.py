"""the reconcile loop's row in `python -m bench abuse`'s components table (issue 23,
finding 4): a PDS that answers a new CID on every read. the production pass
(`reconcile_once`, the worker's PDS client kept across passes) over plyr.fm's
playlists (an in-memory catalog: the pass reads it through the same `Catalog`
port), then a real docket worker until its tasks are done, on the real redis-server;
the vector store counts its nearest-neighbour queries.

before: each pass computed and stored a new 24 h entry for every such playlist.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Final

import redis.asyncio as aioredis
from aiohttp import web
from docket import Docket

from bench.abuse.component_row import ComponentRow, redis_db
from bench.api_server import bench_playlists, bench_world, track_uri
from bench.loopback.pds import LoopbackPds, list_record_value
from engine.cache import CACHE_PREFIX
from engine.eligibility import ArtistRecord
from engine.exact_store import ExactStore
from engine.types import Candidate, Vector
from worker.processes.worker import build_worker
from worker.recs.services import installed, open_services
from worker.settings import Settings
from worker.tasks.reconcile import reconcile_once
from worker.wiring import pds_client

PLAYLISTS: Final = 20
PASSES: Final = 3


class NewCidPds(LoopbackPds):
    """a PDS that names a CID never seen before on every read of every record."""

    async def _answer(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        if "cid" in body:
            body = {**body, "cid": _fresh_cid()}
        if "records" in body:
            body = {**body, "records": [{**r, "cid": _fresh_cid()} for r in body["records"]]}
        return await super()._answer(request, body)


def _fresh_cid() -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    digits = uuid.uuid4().int
    return "bafyrei" + "".join(alphabet[(digits >> (5 * i)) & 31] for i in range(52))


class CountingStore:
    """the exact store, counting the nearest-neighbour queries that reach it."""

    def __init__(self, inner: ExactStore) -> None:
        self.inner = inner
        self.queries = 0

    async def get_vectors(self, track_ids: Sequence[int]) -> dict[int, Vector]:
        return await self.inner.get_vectors(track_ids)

    async def query_many(self, *args: Any, **kwargs: Any) -> list[list[Candidate]]:
        self.queries += 1
        return await self.inner.query_many(*args, **kwargs)


async def _entries(redis: aioredis.Redis) -> int:
    return sum([1 async for _ in redis.scan_iter(match=f"{CACHE_PREFIX}:*", count=1000)])


async def _passes(redis_url: str, pds: LoopbackPds) -> list[tuple[int, int, int, float]]:
    """each pass: (new entries, ANN queries, failed:pds_other_version, seconds)."""
    playlists = bench_playlists(PLAYLISTS)
    catalog, exact = bench_world(playlists)
    for index, playlist in enumerate(playlists):
        owner = playlist.owner_did
        catalog.replace_artist(ArtistRecord(owner, f"{owner[8:16]}.test", "owner", pds_url=pds.url))
        uris = [track_uri(t) for t in playlist.track_ids]
        pds.put(
            f"at://{owner}/fm.plyr.list/3benchlist{index:04d}",
            playlist.cid,
            list_record_value(uris),
        )
    store = CountingStore(exact)
    redis = aioredis.Redis.from_url(redis_url)
    await redis.flushdb()
    settings = Settings(
        _env_file=None,
        redis_url=redis_url,
        docket_url=redis_url,
        docket_name=f"bench-reconcile-{uuid.uuid4().hex[:8]}",
        pds_timeout_seconds=1.0,
        pds_allow_private=True,  # the PDS stand-in is on loopback
        reconcile_heal_grace_seconds=0.0,
        reconcile_max_per_second=1000.0,
    )
    client = pds_client(settings)  # kept across passes, as a worker process keeps it
    results = []
    try:
        async with (
            open_services(settings, catalog=catalog, store=store) as services,
            Docket(name=settings.docket_name, url=settings.docket_url) as docket,
        ):
            for _ in range(PASSES):
                entries, queries, started = await _entries(redis), store.queries, time.monotonic()
                summary = await reconcile_once(services, docket, run="loop", pds=client)
                worker = build_worker(docket, concurrency=4)
                worker.minimum_check_interval = timedelta(milliseconds=10)
                worker.scheduling_resolution = timedelta(milliseconds=10)
                with installed(services):
                    async with worker:
                        await worker.run_until_finished()
                results.append(
                    (
                        await _entries(redis) - entries,
                        store.queries - queries,
                        summary.counts["failed:pds_other_version"],
                        time.monotonic() - started,
                    )
                )
    finally:
        await client.aclose()
        await redis.aclose()
    return results


def _per_pass(results: list[tuple[int, int, int, float]]) -> str:
    return "; ".join(f"+{e} entries, {q} ANN" for e, q, _, _ in results)


async def pds_new_cid(redis_url: str, seconds: float) -> ComponentRow:
    async with LoopbackPds() as honest:
        quiet = await _passes(redis_db(redis_url, 4), honest)
    async with NewCidPds() as lying:
        lied = await _passes(redis_db(redis_url, 4), lying)
    ok = (
        quiet[0][0] == PLAYLISTS
        and all(entries == 0 for entries, _, _, _ in quiet[1:])
        and all(entries == 0 and queries == 0 for entries, queries, _, _ in lied)
        and all(other == PLAYLISTS for _, _, other, _ in lied)
    )
    return ComponentRow(
        name="PDS names a new CID per read (reconcile)",
        attack=f"{PLAYLISTS} playlists' PDS answers a new CID every read, {PASSES} passes",
        legit_quiet=f"honest PDS: {_per_pass(quiet)}",
        legit_attack=f"{_per_pass(lied)}; pds_other_version "
        + "/".join(str(other) for _, _, other, _ in lied),
        resource="pass + drain s: "
        + "/".join(f"{s:.2f}" for *_, s in lied)
        + " (quiet "
        + "/".join(f"{s:.2f}" for *_, s in quiet)
        + ")",
        bound="0 new entries and 0 ANN queries a pass; each counted pds_other_version",
        ok=ok,
    )
