"""the reconcile pass's batches (`worker.tasks.batch`) against real parts: PostgreSQL
from the schema, redis-server (cache and docket), the turbopuffer-speaking server
and PDS stand-ins on loopback. what one task per playlist guaranteed through its
docket key, a batch must still guarantee; an item that would be retried must not
be lost, nor retry its whole batch."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import redis.asyncio as aioredis
from docket import Docket

from bench.loopback.servers import RedisServer
from engine.cache import cache_key
from engine.keys import STORE_SLOTS_KEY
from jetstream.contract import recompute_key
from jetstream.guard import GuardState, RevGuard
from jetstream.keys import JetstreamKeys
from tests.support.reconcile_world import (
    ReconcileWorld,
    add_sample_playlists,
    reconcile_world,
    running_parts,
)
from tests.support.world import drain
from worker.recs.services import Services, store_budget
from worker.tasks.batch import MAX_BATCH_ITEMS, BatchItem, recompute_batch
from worker.tasks.playlist import recompute_playlist
from worker.tasks.reconcile import reconcile_once

pytestmark = pytest.mark.timeout(120)

PUBLIC_LIVE = ["alice0", "alice1", "alice2", "alice3", "bob0", "bob1", "carol0", "carol1"]
NEWER_REV = "3mzzzzzzzzzz2"


@pytest.fixture
async def world(postgres_dsn: str, redis_server: RedisServer) -> ReconcileWorld:
    async with reconcile_world(postgres_dsn, redis_server) as built:
        await add_sample_playlists(built, gone=False)
        yield built  # type: ignore[misc]


@pytest.fixture
async def public_world(postgres_dsn: str, redis_server: RedisServer) -> ReconcileWorld:
    """the same public playlists, and no private one: one batch is all the work."""
    async with reconcile_world(postgres_dsn, redis_server) as built:
        await add_sample_playlists(built, gone=False, private=False)
        yield built  # type: ignore[misc]


async def cached(redis: aioredis.Redis, world: ReconcileWorld, name: str) -> bool:
    playlist = world.playlists[name]
    return bool(await redis.exists(cache_key(playlist.playlist_id, playlist.token)))


async def assert_every_public_playlist_computed(
    services: Services, redis: aioredis.Redis, world: ReconcileWorld
) -> None:
    """each public playlist computed once (no more, no fewer) and its version cached."""
    assert services.counts["recompute:computed"] == len(PUBLIC_LIVE)
    for name in PUBLIC_LIVE:
        assert await cached(redis, world, name), name


async def queued(docket: Docket) -> list[str]:
    """the function names of the tasks waiting in `docket`."""
    snapshot = await docket.snapshot()
    return sorted(execution.function_name for execution in snapshot.future)


async def test_a_cold_deploy_goes_batch_size_playlists_to_a_task_and_warms_them_all(
    world: ReconcileWorld, redis_client: aioredis.Redis
) -> None:
    async with running_parts(world.settings(reconcile_batch_size=3)) as (services, docket):
        summary = await reconcile_once(services, docket, run="loop")
        assert summary.counts["enqueued:cold"] == len(PUBLIC_LIVE)
        assert summary.counts["enqueued:private"] == 1
        # 8 public playlists in 3s (a page is one chunk here); the private one alone
        batches = math.ceil(len(PUBLIC_LIVE) / 3)
        assert await queued(docket) == ["recompute_batch"] * batches + [
            "recompute_private_playlist"
        ]
        await drain(docket, services)
    for name in [*PUBLIC_LIVE, "secret"]:
        assert await cached(redis_client, world, name), name
    assert services.counts["recompute:computed"] == len(PUBLIC_LIVE) + 1
    assert services.counts["batch:handed_off"] == 0


async def test_a_batch_looks_its_tracks_up_in_one_request_ahead_of_its_runs(
    public_world: ReconcileWorld, redis_client: aioredis.Redis
) -> None:
    world = public_world
    settings = world.settings(vector_cache_size=10_000)
    async with running_parts(settings) as (services, docket):
        await reconcile_once(services, docket, run="loop")
        world.turbopuffer.reset()
        await drain(docket, services)
    # one batch of the 8: one id lookup for all their tracks; each run's own lookup
    # found every vector in the cache (no track without an embedding here)
    lookups = world.turbopuffer.requests_of("query")
    assert len(lookups) == 1
    assert services.counts["batch:read_ahead"] == 1
    asked = set(lookups[0].body["filters"][2])
    playlists = [world.playlists[name] for name in PUBLIC_LIVE]
    assert len(asked) == len({uri for playlist in playlists for uri in playlist.track_uris})
    assert len(world.turbopuffer.requests_of("multi_query")) >= 1
    await assert_every_public_playlist_computed(services, redis_client, world)


async def test_a_batchs_searches_go_out_together_under_one_slot(
    public_world: ReconcileWorld, redis_client: aioredis.Redis
) -> None:
    world = public_world
    async with running_parts(world.settings()) as (services, docket):
        await reconcile_once(services, docket, run="loop")
        world.turbopuffer.reset()
        await drain(docket, services)
        slots = await redis_client.zcard(STORE_SLOTS_KEY)
    searches = [q for r in world.turbopuffer.requests_of("multi_query") for q in r.body["queries"]]
    # every run's searches waited for the others' and went out in one release: the
    # fewest requests turbopuffer takes (16 searches each), one after another
    assert services.counts["batch:gate_releases"] == 1
    assert services.counts["batch:gated_searches"] == len(searches) > len(PUBLIC_LIVE)
    sizes = [len(r.body["queries"]) for r in world.turbopuffer.requests_of("multi_query")]
    assert sizes == [16] * (len(searches) // 16) + (
        [len(searches) % 16] if len(searches) % 16 else []
    )
    assert slots == 0  # the release's slot was given back
    assert services.counts["recompute:computed"] == len(PUBLIC_LIVE)


async def test_a_batch_waits_past_a_second_for_a_slot_instead_of_handing_its_runs_off(
    public_world: ReconcileWorld, redis_client: aioredis.Redis
) -> None:
    world = public_world
    settings = world.settings()
    async with running_parts(settings) as (services, docket):
        await reconcile_once(services, docket, run="loop")
        # every slot the workers may use is held (by other workers, say) for 1.5 s:
        # longer than a background request waits, shorter than a batch's patience
        budget = store_budget(settings, redis_client)
        holders = [f"elsewhere-{n}" for n in range(budget.limit - budget.reserved)]
        for holder in holders:
            assert await budget._take(holder, budget.limit - budget.reserved)
        draining = asyncio.ensure_future(drain(docket, services))
        await asyncio.sleep(1.5)
        assert services.counts["recompute:computed"] == 0
        for holder in holders:
            await budget.give_back(holder)
        await draining
    # the read-ahead and the gate's searches waited for their slots: nothing failed
    assert services.counts["batch:read_ahead_failed"] == 0
    assert services.counts["batch:handed_off"] == 0
    assert services.counts["batch:read_ahead"] == services.counts["batch:gate_releases"] == 1
    await assert_every_public_playlist_computed(services, redis_client, world)


async def test_a_batch_computes_the_answers_one_task_each_would(
    public_world: ReconcileWorld, redis_client: aioredis.Redis
) -> None:
    world = public_world

    async def answers(batch_size: int) -> dict[str, list[int]]:
        await redis_client.flushall()
        settings = world.settings(reconcile_batch_size=batch_size)
        async with running_parts(settings) as (services, docket):
            await reconcile_once(services, docket, run="loop")
            await drain(docket, services)
            found: dict[str, list[int]] = {}
            for name in PUBLIC_LIVE:
                playlist = world.playlists[name]
                entry = await services.cache.get(playlist.playlist_id, playlist.token)
                assert entry is not None, name
                found[name] = [track.id for track in entry.tracks]
        return found

    batched = await answers(8)
    assert any(batched.values())
    assert batched == await answers(1)


@pytest.mark.usefixtures("redis_client")  # flushed: nothing cached by an earlier test
async def test_without_a_vector_cache_the_runs_look_up_their_own(
    public_world: ReconcileWorld,
) -> None:
    world = public_world
    async with running_parts(world.settings(vector_cache_size=0)) as (services, docket):
        await reconcile_once(services, docket, run="loop")
        world.turbopuffer.reset()
        await drain(docket, services)
    # no read-ahead (it would only fill a cache): the runs asked for every track
    assert services.counts["batch:read_ahead"] == 0
    asked = {
        i for request in world.turbopuffer.requests_of("query") for i in request.body["filters"][2]
    }
    playlists = [world.playlists[name] for name in PUBLIC_LIVE]
    assert len(asked) == len({uri for playlist in playlists for uri in playlist.track_uris})
    assert services.counts["recompute:computed"] == len(PUBLIC_LIVE)


@pytest.mark.usefixtures("redis_client")  # flushed: nothing cached by an earlier test
async def test_at_a_batch_size_of_one_each_playlist_is_its_own_keyed_task(
    world: ReconcileWorld,
) -> None:
    async with running_parts(world.settings(reconcile_batch_size=1)) as (services, docket):
        await reconcile_once(services, docket, run="loop")
        snapshot = await docket.snapshot()
    keys = {execution.key for execution in snapshot.future}
    for name in PUBLIC_LIVE:
        uri = world.playlists[name].uri
        assert uri is not None
        assert recompute_key(uri) in keys, name
    names = {execution.function_name for execution in snapshot.future}
    assert names == {"recompute_playlist", "recompute_private_playlist"}


async def test_an_edit_the_consumer_accepted_wins_over_the_batch_of_the_older_version(
    world: ReconcileWorld, redis_client: aioredis.Redis
) -> None:
    # the consumer accepted an edit plyr.fm has not ingested yet and queued its task
    # (settling for a second); the pass, reading plyr.fm, batches the older version
    alice0 = world.playlists["alice0"]
    assert alice0.uri is not None
    newer_cid = "bafyreinewer" + "q" * 47
    settings = world.settings()
    async with running_parts(settings) as (services, docket):
        guard = RevGuard(services.redis, JetstreamKeys(settings.list_collection), 3600)
        await guard.record({alice0.uri: GuardState(NEWER_REV, newer_cid)})
        when = datetime.now(UTC) + timedelta(seconds=1)
        await docket.add(recompute_playlist, when=when, key=recompute_key(alice0.uri))(
            alice0.uri, newer_cid, NEWER_REV, alice0.track_uris[:2]
        )
        summary = await reconcile_once(services, docket, run="loop")
        assert summary.counts["enqueued:cold"] == len(PUBLIC_LIVE)
        await drain(docket, services)
    assert await redis_client.exists(cache_key(alice0.playlist_id, newer_cid))
    assert not await cached(redis_client, world, "alice0")
    assert services.counts["dropped:superseded"] == 1, services.counts
    for name in PUBLIC_LIVE[1:]:
        assert await cached(redis_client, world, name), name


async def test_a_failed_read_ahead_leaves_each_run_to_look_up_its_own(
    public_world: ReconcileWorld, redis_client: aioredis.Redis
) -> None:
    world = public_world
    # no retries in the client: a refused request fails at once (the read-ahead here)
    async with running_parts(world.settings(turbopuffer_max_retries=0)) as (services, docket):
        await reconcile_once(services, docket, run="loop")
        world.turbopuffer.fail_next(503)
        await drain(docket, services)
    assert services.counts["batch:read_ahead_failed"] == 1
    assert services.counts["batch:handed_off"] == 0
    # the refused lookup, then the runs' own (shared by the runs of a turn)
    assert len(world.turbopuffer.requests_of("query")) >= 2
    await assert_every_public_playlist_computed(services, redis_client, world)


async def test_a_failed_shared_search_hands_its_runs_off_and_each_is_computed_once(
    public_world: ReconcileWorld, redis_client: aioredis.Redis
) -> None:
    world = public_world
    # the read-ahead is answered, the batch's first multi-query refused: every run
    # whose searches it carried fails for now, and is handed to a task of its own
    async with running_parts(world.settings(turbopuffer_max_retries=0)) as (services, docket):
        await reconcile_once(services, docket, run="loop")
        world.turbopuffer.delay_next(0.0)
        world.turbopuffer.fail_next(503)
        await drain(docket, services)
    assert services.counts["batch:gate_releases"] == 1
    assert services.counts["retried:transient"] == len(PUBLIC_LIVE), services.counts
    assert services.counts["batch:handed_off"] == len(PUBLIC_LIVE)
    # a failed item does not redo its batch: every playlist computed once, none reused
    outcomes = {kind for kind in services.counts if kind.startswith("recompute:")}
    assert outcomes == {"recompute:computed"}
    await assert_every_public_playlist_computed(services, redis_client, world)


async def test_a_playlist_gone_from_plyr_fm_before_its_batch_runs_waits_in_its_own_task(
    world: ReconcileWorld, redis_client: aioredis.Redis
) -> None:
    async with running_parts(world.settings(playlist_wait_seconds=1.0)) as (services, docket):
        await reconcile_once(services, docket, run="loop")
        connection = await asyncpg.connect(world.dsn)
        try:
            await connection.execute(
                "DELETE FROM playlists WHERE id = $1", world.playlists["bob0"].playlist_id
            )
        finally:
            await connection.close()
        await drain(docket, services)
    assert services.counts["batch:handed_off"] == 1
    # its own task waited for plyr.fm's ingest, then dropped it
    assert services.counts["waiting:unknown_playlist"] >= 1
    assert services.counts["dropped:unknown_playlist"] == 1
    assert services.counts["failed:unexpected"] == 0  # a wait, not a fault
    assert not await cached(redis_client, world, "bob0")
    for name in [name for name in PUBLIC_LIVE if name != "bob0"]:
        assert await cached(redis_client, world, name), name


async def test_a_bad_batch_or_item_is_dropped_and_counted_and_the_good_items_run(
    world: ReconcileWorld, redis_client: aioredis.Redis
) -> None:
    alice0 = world.playlists["alice0"]
    assert alice0.uri is not None
    assert alice0.cid is not None
    good = BatchItem(alice0.uri, alice0.cid, NEWER_REV, alice0.track_uris)
    async with running_parts(world.settings()) as (services, docket):
        await docket.add(recompute_batch)("not a list")
        await docket.add(recompute_batch)([])
        await docket.add(recompute_batch)([list(good)] * (MAX_BATCH_ITEMS + 1))
        await docket.add(recompute_batch)(
            [
                ["at://not a list uri", alice0.cid, NEWER_REV, [], False],
                ["three", "fields", "only"],
                list(good),
            ]
        )
        await drain(docket, services)
        assert_counted(services)
    assert await cached(redis_client, world, "alice0")


def assert_counted(services: Services) -> None:
    counts = services.counts
    assert counts["dropped:bad_batch"] == 3  # a string, an empty list, one too many
    assert counts["dropped:bad_batch_item"] == 1
    assert counts["dropped:permanent"] == 1  # the bad URI, refused by the task's checks
    assert counts["recompute:computed"] == 1
    assert counts["batch:handed_off"] == 0
