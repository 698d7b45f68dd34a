"""issue 6, faults: each fault leaves the cache exactly as a fault-free run leaves it.

one world for the module (a generated catalogue in a real PostgreSQL, its vectors
in the turbopuffer-speaking server, a synthetic stream of playlist edits); each
scenario runs the stream through fresh parts (its own redis-server, a replay
server, the consumer, the worker, the API), breaks one of them mid-stream, and
is judged by `bench.reliability.check`: nothing lost, nothing wrong,
the API's answers are the cache's. the full-size run with the table is
`python -m bench.reliability.report`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import fakeredis
import orjson
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from docket import Docket

from bench.loopback.servers import RedisServer
from bench.reliability.delivery import replayed_twice, with_out_of_order_revisions
from bench.reliability.scenarios import (
    Durations,
    Outcome,
    Scenario,
    run_scenario,
    scenarios,
)
from bench.reliability.stream import SyntheticStream
from bench.reliability.world import CI_SIZE, World
from engine.cache import cache_key
from engine.postgres_catalog import is_unavailable
from jetstream.contract import recompute_key
from jetstream.replay import ReplayServer
from tests.support.jetstream_world import eventually, loopback_config, running_consumer
from tests.support.samples import story_frames
from tests.support.world import (
    P1_ID,
    P1_URI,
    P2_URI,
    HeldStore,
    StoryCommit,
    embedded_services,
    story_commits,
)
from worker.processes.worker import build_worker
from worker.recs.services import installed
from worker.store.lock import PlaylistBusy, lock_key, playlist_lock
from worker.tasks.playlist import recompute_playlist

# the scenarios share one world (and so one event loop); the focused tests below don't
in_the_world = pytest.mark.asyncio(loop_scope="module")
pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SCENARIOS = scenarios(CI_SIZE.frames)
REFERENCE, FAULTS = SCENARIOS[0], SCENARIOS[1:]
DURATIONS = Durations(outage=1.0, stall=1.0, refusing=1.0, turbopuffer=1.0, within=45.0)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    built = World(CI_SIZE, tmp_path_factory.mktemp("reliability"))
    await built.start()
    try:
        built.reference_outcome = await run_scenario(built, REFERENCE, DURATIONS)
        yield built
    finally:
        await built.close()


def assert_nothing_lost_nothing_wrong(outcome: Outcome) -> None:
    assert outcome.verdict.lost == [], f"{outcome.scenario}: lost {outcome.verdict.lost}"
    assert outcome.verdict.wrong == [], f"{outcome.scenario}: wrong {outcome.verdict.wrong}"
    assert outcome.api_mismatches == 0, f"{outcome.scenario}: API answers differ from the cache"


@in_the_world
async def test_the_fault_free_run_caches_every_final_version_correctly(world: World) -> None:
    outcome = world.reference_outcome
    assert world.stream is not None
    assert world.reference is not None
    assert_nothing_lost_nothing_wrong(outcome)  # judged against the oracle, not itself
    assert len(world.reference) == len(world.stream.live())
    assert all(value["available"] for value in world.reference.values())
    assert outcome.server_errors == 0
    assert outcome.statuses.get(200, 0) > 0


@in_the_world
@pytest.mark.parametrize("scenario", FAULTS, ids=[scenario.name for scenario in FAULTS])
async def test_a_fault_leaves_the_cache_as_the_fault_free_run(
    world: World, scenario: Scenario
) -> None:
    outcome = await run_scenario(world, scenario, DURATIONS)
    assert outcome.faults > 0, "the fault never happened"
    assert_nothing_lost_nothing_wrong(outcome)
    assert outcome.recover_seconds is not None
    assert outcome.server_errors == 0, outcome.statuses
    if scenario.name == "same capture replayed twice":
        # the second delivery is recognised frame by frame: not one task more
        assert outcome.enqueued == world.reference_outcome.enqueued


# --- the stream and its faulty deliveries (no servers) ----------------------------------


@in_the_world
async def test_the_stream_is_as_big_as_asked_and_its_clock_never_goes_back(world: World) -> None:
    stream = world.stream
    assert stream is not None
    assert len(stream.frames) >= CI_SIZE.frames * 0.9
    assert len(stream.playlists) == CI_SIZE.playlists
    assert list(stream.time_us) == sorted(stream.time_us)
    assert any(life.deleted for life in stream.playlists.values())


@in_the_world
@pytest.mark.parametrize("transform", [replayed_twice, with_out_of_order_revisions])
async def test_a_faulty_delivery_keeps_the_final_states_and_the_clock(
    world: World, transform: object
) -> None:
    stream = world.stream
    assert stream is not None
    delivered: SyntheticStream = (
        replayed_twice(stream)
        if transform is replayed_twice
        else with_out_of_order_revisions(stream, every=7)
    )
    assert delivered.extra_frames > 0
    assert list(delivered.time_us) == sorted(delivered.time_us)
    assert delivered.playlists is stream.playlists
    assert sorted(delivered.frames) != sorted(stream.frames)


# --- what the scenarios found, pinned on their own ----------------------------------------

COMMITS = story_commits()
P1_THREE, P1_EIGHT, P1_RENAME = COMMITS[1], COMMITS[2], COMMITS[4]


async def test_an_edit_made_while_an_older_version_runs_is_computed(
    redis_server: RedisServer,
) -> None:
    """docket's ConcurrencyLimit parked the second version behind the running first and,
    once a third edit replaced the key, woke the parked second in its place: the
    playlist ended on its middle version. with the playlist lock nothing parks."""
    store = HeldStore()
    name = f"lock-{uuid.uuid4().hex[:8]}"
    docket_redis = aioredis.Redis.from_url(redis_server.url)
    async with (
        Docket(name=name, url=redis_server.url) as docket,
        embedded_services(store=store) as services,
    ):
        worker = build_worker(docket, concurrency=4)
        worker.minimum_check_interval = timedelta(milliseconds=10)
        worker.scheduling_resolution = timedelta(milliseconds=10)

        async def edit(commit: StoryCommit, delay: float = 0.0) -> None:
            when = datetime.now(UTC) + timedelta(seconds=delay)
            key = recompute_key(commit.playlist_uri)
            args = (commit.playlist_uri, commit.cid, commit.rev, commit.track_uris)
            await docket.replace(recompute_playlist, when, key)(*args)

        async def second_version_set_aside() -> bool:
            # new: it found the playlist busy and will retry; old: docket parked it
            parked = [key async for key in docket_redis.scan_iter(match=f"{name}:*:waiters")]
            return services.counts["retried:busy"] >= 1 or bool(parked)

        async def newest_cached() -> bool:
            return await services.redis.get(cache_key(P1_ID, P1_RENAME.cid)) is not None

        with installed(services):
            async with worker:
                running = asyncio.create_task(worker.run_forever())
                try:
                    await edit(P1_THREE)
                    await asyncio.wait_for(store.entered.wait(), 10)
                    await edit(P1_EIGHT)  # due now, while P1_THREE is still running
                    await until(second_version_set_aside, "the second version to be set aside")
                    await edit(P1_RENAME, delay=0.2)  # the newest edit
                    store.release.set()
                    await until(newest_cached, "the newest edit to be computed")
                finally:
                    store.release.set()
                    running.cancel()
                    await asyncio.gather(running, return_exceptions=True)
        state = await services.cache.get_state(P1_ID)
        assert state is not None
        assert state.token == P1_RENAME.cid
    await docket_redis.aclose()


async def until(check: Callable[[], Awaitable[bool]], what: str, within: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.02)


async def test_the_playlist_lock_is_exclusive_leased_and_released_by_its_holder() -> None:
    redis = fakeredis.FakeAsyncRedis()
    async with playlist_lock(redis, P1_URI, lease_seconds=0.3):
        with pytest.raises(PlaylistBusy):
            async with playlist_lock(redis, P1_URI, lease_seconds=0.3):
                pass
        async with playlist_lock(redis, P2_URI, lease_seconds=0.3):
            pass  # another playlist is not held up
        await asyncio.sleep(0.5)  # longer than the lease: renewed while held
        assert await redis.exists(lock_key(P1_URI))
    assert not await redis.exists(lock_key(P1_URI))
    # a holder that died (its key left behind, not renewed) holds it one lease at most
    await redis.set(lock_key(P1_URI), "someone else", px=200)
    with pytest.raises(PlaylistBusy):
        async with playlist_lock(redis, P1_URI, lease_seconds=0.3):
            pass
    await eventually(lambda: True)  # let the loop turn
    await asyncio.sleep(0.25)
    async with playlist_lock(redis, P1_URI, lease_seconds=0.3):
        assert await redis.get(lock_key(P1_URI)) != b"someone else"


async def test_a_redis_that_comes_back_empty_is_noticed_and_its_work_replayed(
    redis_client: aioredis.Redis,
) -> None:
    """Redis restarted without its data raises nothing once it is back: the consumer
    must notice on its own that the cursor, the revs, docket's queue and the cache are
    gone, and replay the commits whose work went with them."""
    frames = story_frames()
    last_time_us = max(orjson.loads(frame)["time_us"] for frame in frames)
    async with (
        Docket(name=f"loss-{uuid.uuid4().hex[:8]}", url="memory://") as docket,
        ReplayServer(frames) as replay,
    ):
        config = loopback_config((replay.url,))
        async with running_consumer(config, redis_client, docket) as running:
            await eventually(lambda: running.consumer.cursor.done == last_time_us)
            before = {(task.playlist_uri, task.rev) for task in running.enqueued}
            count = len(running.enqueued)
            await redis_client.flushall()  # what a restart without persistence leaves
            await eventually(lambda: len(replay.connections) >= 2, what="a reconnect")
            await eventually(
                lambda: len(running.enqueued) >= 2 * count, what="the lost work enqueued again"
            )
            again = {(task.playlist_uri, task.rev) for task in running.enqueued[count:]}
        resumed_from = replay.connections[-1].cursor
        assert resumed_from is not None
        assert resumed_from <= last_time_us - 86_400 * 1_000_000
        assert again == before


def test_a_connection_a_restarted_postgresql_left_mid_operation_means_unavailable() -> None:
    """seen in "postgresql down": the API answered 500 instead of its documented 503,
    and the worker dropped out of its transient-fault handling."""
    error = asyncpg.InternalClientError(
        "cannot switch to state 12; another operation (2) is in progress"
    )
    assert is_unavailable(error)
