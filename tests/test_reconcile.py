"""the reconcile loop against real parts: PostgreSQL from the schema, redis-server
(cache and docket), the turbopuffer-speaking server and PDS stand-ins on loopback."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from bench.loopback.pds import list_record_value
from bench.loopback.servers import RedisServer
from engine.cache import cache_key
from jetstream.contract import recompute_key
from jetstream.guard import GuardState
from jetstream.keys import JetstreamKeys
from tests.support.reconcile_world import (
    ReconcileWorld,
    add_sample_playlists,
    ago,
    pass_and_drain,
    reconcile_world,
    running_parts,
)
from tests.support.world import drain
from worker.processes.worker import build_worker
from worker.recs.services import installed
from worker.store.activity import ActivityLog
from worker.store.reconcile_state import ReconcileState, reconcile_totals
from worker.tasks.playlist import recompute_playlist
from worker.tasks.reconcile import RECONCILE_TASK, reconcile_once

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def world(postgres_dsn: str, redis_server: RedisServer) -> ReconcileWorld:
    async with reconcile_world(postgres_dsn, redis_server) as built:
        await add_sample_playlists(built)
        yield built  # type: ignore[misc]


async def entry_ttl(redis: aioredis.Redis, world: ReconcileWorld, name: str) -> int:
    playlist = world.playlists[name]
    return int(await redis.pttl(cache_key(playlist.playlist_id, playlist.token)))


LIVE = ["alice0", "alice1", "alice2", "alice3", "bob0", "bob1", "secret"]


async def test_a_cold_deploy_warms_every_live_playlist_and_none_of_the_deleted(
    world: ReconcileWorld, redis_client: aioredis.Redis
) -> None:
    world.bad.fault = "error"
    async with running_parts(world.settings()) as (services, docket):
        first = await pass_and_drain(services, docket)
        assert first.counts["enqueued:cold"] == 6
        assert first.counts["enqueued:private"] == 1
        assert first.counts["deleted"] == 1
        # the failing PDS was asked once; its other playlist was not (no tight loop)
        assert first.counts["failed:status_5xx"] == 1
        assert first.counts["failed:host_failing"] == 1
        assert world.bad.requests["getRecord"] == 1
        # alice's four due playlists came in one listRecords, bob's two by getRecord
        assert world.good.requests["listRecords"] == 1
        # bob's two; "gone" is alice's, absent from her complete listing: deleted
        assert world.good.requests["getRecord"] == 2
        for name in LIVE:
            assert await entry_ttl(redis_client, world, name) > 0, name
        for name in ("gone", "carol0", "carol1"):
            assert await entry_ttl(redis_client, world, name) == -2, name

        # the same plyr.fm, a pass later: nothing to do for what is warm
        requests_before = sum(world.good.requests.values())
        second = await pass_and_drain(services, docket)
        assert second.enqueued == 0
        assert second.counts["warm"] == len(LIVE)
        # "gone" is not asked again: its PDS said this version's record is deleted
        assert sum(world.good.requests.values()) - requests_before == 0
        assert second.counts["deleted_known"] == 1

        # the PDS is back: a later pass computes what it could not
        world.bad.fault = None
        third = await pass_and_drain(services, docket)
        assert third.counts["enqueued:cold"] == 2
        assert await entry_ttl(redis_client, world, "carol0") > 0
        last = await ReconcileState(redis_client, run="loop", position_ttl_seconds=60).last()
        assert last is not None
        assert last.finished_at is not None
        assert last.listed == 10


@pytest.mark.parametrize("fault", ["garbage", "stall"])
async def test_a_pds_that_answers_badly_or_never_fails_the_playlist_not_the_pass(
    world: ReconcileWorld, redis_client: aioredis.Redis, fault: str
) -> None:
    world.bad.fault = fault  # type: ignore[assignment]
    async with running_parts(world.settings(pds_timeout_seconds=0.3)) as (services, docket):
        summary = await pass_and_drain(services, docket)
    reason = "bad_response" if fault == "garbage" else "timeout"
    assert summary.counts[f"failed:{reason}"] >= 1
    assert summary.counts["enqueued:cold"] == 6
    assert await entry_ttl(redis_client, world, "carol0") == -2


async def test_a_malformed_record_is_refused_and_counted(
    world: ReconcileWorld, redis_client: aioredis.Redis
) -> None:
    bob0 = world.playlists["bob0"]
    assert bob0.uri is not None
    assert bob0.cid is not None
    world.good.put(bob0.uri, bob0.cid, {"$type": "fm.plyr.list", "items": "not a list"})
    async with running_parts(world.settings()) as (services, docket):
        summary = await pass_and_drain(services, docket)
    assert any(kind.startswith("failed:") and "carol" not in kind for kind in summary.counts)
    assert await entry_ttl(redis_client, world, "bob0") == -2
    assert await entry_ttl(redis_client, world, "bob1") > 0


async def test_an_edit_pending_when_the_pass_comes_is_not_overwritten(
    world: ReconcileWorld, redis_client: aioredis.Redis
) -> None:
    """one task per playlist (batch size 1): the pass's task meets the edit's key.
    batched, the edit's newer version wins under the lock (test_reconcile_batch.py)."""
    alice0 = world.playlists["alice0"]
    assert alice0.uri is not None
    newer_cid = "bafyreinewer" + "q" * 47
    async with running_parts(world.settings(reconcile_batch_size=1)) as (services, docket):
        # the consumer enqueued an edit (settling for a second) that plyr.fm has not ingested
        when = datetime.now(UTC) + timedelta(seconds=1)
        await docket.replace(recompute_playlist, when=when, key=recompute_key(alice0.uri))(
            alice0.uri, newer_cid, "3mzzzzzzzzzz2", alice0.track_uris[:2]
        )
        summary = await reconcile_once(services, docket, run="loop")
        assert summary.counts["pending"] == 1
        await drain(docket, services)
    assert await redis_client.exists(cache_key(alice0.playlist_id, newer_cid))
    assert not await redis_client.exists(cache_key(alice0.playlist_id, alice0.token))


async def test_an_edit_arriving_after_the_pass_enqueued_replaces_its_task(
    world: ReconcileWorld, redis_client: aioredis.Redis
) -> None:
    """one task per playlist (batch size 1): the edit replaces the pass's task."""
    alice1 = world.playlists["alice1"]
    assert alice1.uri is not None
    newer_cid = "bafyreinewer" + "r" * 47
    async with running_parts(world.settings(reconcile_batch_size=1)) as (services, docket):
        summary = await reconcile_once(services, docket, run="loop")  # enqueued, not run yet
        assert summary.counts["enqueued:cold"] == 8
        now = datetime.now(UTC)
        await docket.replace(recompute_playlist, when=now, key=recompute_key(alice1.uri))(
            alice1.uri, newer_cid, "3mzzzzzzzzzz2", alice1.track_uris[:1]
        )
        await drain(docket, services)
    assert await redis_client.exists(cache_key(alice1.playlist_id, newer_cid))
    assert not await redis_client.exists(cache_key(alice1.playlist_id, alice1.token))


async def test_a_private_playlist_is_computed_from_its_items_and_follows_its_edits(
    world: ReconcileWorld, redis_client: aioredis.Redis
) -> None:
    async with running_parts(world.settings()) as (services, docket):
        await pass_and_drain(services, docket)
        assert await entry_ttl(redis_client, world, "secret") > 0
        edited = await world.edit_in_database("secret", [18, 22, 26])
        summary = await pass_and_drain(services, docket)
        assert summary.counts["enqueued:private"] == 1
        state = await services.cache.get_state(edited.playlist_id)
    assert state is not None
    assert state.token == edited.token
    assert sorted(state.track_uris) == sorted(edited.track_uris)


async def test_a_version_only_the_database_knows_is_healed_and_counted(
    world: ReconcileWorld, redis_client: aioredis.Redis
) -> None:
    async with running_parts(world.settings()) as (services, docket):
        await pass_and_drain(services, docket)
        # bob1 changed without any firehose event; bob0 changed and the consumer saw it
        healed = await world.edit_in_database("bob1", [3, 7])
        delivered = await world.edit_in_database("bob0", [2, 6, 10])
        assert delivered.uri is not None
        assert delivered.cid is not None
        guard = JetstreamKeys(services.settings.list_collection).rev(delivered.uri)
        await redis_client.set(guard, GuardState("3mzzzzzzzzzz2", delivered.cid).encode(), ex=60)
        summary = await pass_and_drain(services, docket)
        assert summary.counts["enqueued:missed_by_firehose"] == 1
        assert summary.counts["enqueued:cold"] == 1  # bob0: the consumer has it in hand
        assert await redis_client.exists(cache_key(healed.playlist_id, healed.token))
        assert (await reconcile_totals(redis_client))["missed_by_firehose"] == 1


async def test_active_entries_never_lapse_while_an_inactive_one_does(
    world: ReconcileWorld, redis_client: aioredis.Redis
) -> None:
    ttl = 5
    settings = world.settings(
        cache_ttl_seconds=ttl, reconcile_interval_seconds=1.0, refresh_margin_seconds=2.0
    )
    viewed = world.playlists["alice0"]  # viewed through the API
    edited = await world.edit_in_database("bob0", [2, 6, 14], updated_at=ago(60))  # edited lately
    async with running_parts(settings) as (services, docket):
        views = ActivityLog(services.redis, ttl_seconds=3600)
        views.touch(viewed.playlist_id)
        await views.aclose()
        await pass_and_drain(services, docket)
        inactive = world.playlists["alice1"]
        assert await entry_ttl(redis_client, world, "alice1") > 0
        started = asyncio.get_running_loop().time()
        refreshed = 0
        # three periods of the cache's TTL, a pass every half second
        while asyncio.get_running_loop().time() - started < 3 * ttl:
            summary = await pass_and_drain(services, docket)
            refreshed += summary.counts["enqueued:refresh"]
            for playlist in (viewed, edited):
                remaining = await redis_client.pttl(cache_key(playlist.playlist_id, playlist.token))
                assert remaining > 0, f"{playlist.playlist_id} lapsed"
            await asyncio.sleep(0.5)
        assert refreshed >= 2 * 2  # each active one refreshed at least once per period, about
        assert not await redis_client.exists(cache_key(inactive.playlist_id, inactive.token))
        last = await pass_and_drain(services, docket)
        assert last.counts["lapsed"] >= 1  # and it is left lapsed, not warmed again


async def test_a_dry_run_reads_and_writes_nothing_but_says_what_it_would_do(
    world: ReconcileWorld, redis_client: aioredis.Redis
) -> None:
    async with running_parts(world.settings()) as (services, docket):
        summary = await reconcile_once(services, docket, run="warm", dry_run=True)
        assert summary.counts["enqueued:cold"] == 9  # public ones, records not read
        assert summary.counts["enqueued:private"] == 1
        assert sum(world.good.requests.values()) == 0
        assert await docket.snapshot() is not None
        snapshot = await docket.snapshot()
        assert snapshot.total_tasks == 0
    assert await redis_client.keys("plyr:reconcile:*") == []


async def test_a_worker_starts_the_loop_by_itself_and_the_pass_fills_the_cache(
    world: ReconcileWorld, redis_client: aioredis.Redis
) -> None:
    async with running_parts(world.settings()) as (services, docket):
        worker = build_worker(docket, concurrency=4, reconcile=True)
        worker.minimum_check_interval = timedelta(milliseconds=10)
        worker.scheduling_resolution = timedelta(milliseconds=10)
        with installed(services):
            async with worker:
                await worker.run_at_most({RECONCILE_TASK: 1})
        await drain(docket, services)  # (run_at_most strikes the perpetual once it ran)
    assert services.counts["reconcile:passes"] == 1
    for name in ("alice0", "bob1", "secret"):
        assert await entry_ttl(redis_client, world, name) > 0, name


async def test_a_pds_naming_another_version_is_never_cached_under_its_cid(
    world: ReconcileWorld, redis_client: aioredis.Redis
) -> None:
    """the version is plyr.fm's database's, never the PDS's word. before: a PDS naming a
    new CID on every read made every pass compute and store a new 24 h entry for each
    of its playlists (20 playlists x 4 passes -> 80 entries)."""
    bob0 = world.playlists["bob0"]
    assert bob0.uri is not None
    assert bob0.cid is not None
    async with running_parts(world.settings()) as (services, docket):
        for attempt in range(3):
            made_up = "bafyreimadeup" + "abc"[attempt] + "m" * 45  # a CID, not plyr.fm's
            world.good.put(bob0.uri, made_up, {"$type": "fm.plyr.list", "items": []})
            summary = await pass_and_drain(services, docket)
            assert summary.counts["failed:pds_other_version"] == 1, dict(summary.counts)
            assert await redis_client.exists(cache_key(bob0.playlist_id, made_up)) == 0
        assert await entry_ttl(redis_client, world, "bob0") == -2
        # the PDS holds plyr.fm's version again: cached under the database's CID
        world.good.put(bob0.uri, bob0.cid, list_record_value(bob0.track_uris, name="bob0"))
        summary = await pass_and_drain(services, docket)
        assert summary.counts["failed:pds_other_version"] == 0
        assert await entry_ttl(redis_client, world, "bob0") > 0
