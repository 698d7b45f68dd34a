"""the consumer against what production Jetstream does: both wires, a fleet with refusing
hosts, a host blind to plyr.fm, v2's per-instance seq cursors, CursorTooOld, a v1
cursor replayed an hour by a v2 host, markers. the real websockets client against the
replay server; state and docket on a real redis-server. every scenario is held to
the outcome of the fault-free story (`tests.support.story`)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import redis.asyncio as aioredis
from docket import Docket
from rich.console import Console

from jetstream import ReplayFaults, ReplayServer
from jetstream.batch import DueDelete
from jetstream.config import ConsumerConfig
from jetstream.events import RepoResync, TrackDelete
from jetstream.keys import JetstreamKeys
from jetstream.status import read_status, render_status
from jetstream.zstd_frames import train_dictionary
from tests.support.jetstream_v2 import repo_sync, story_dictionary, track_delete
from tests.support.jetstream_world import (
    did,
    eventually,
    loopback_config,
    pending_tasks,
    running_consumer,
    tid,
)
from tests.support.story import (
    LAST_STORY_TIME,
    STORY,
    STORY_ENQUEUED,
    STORY_TIMES,
    recompute_of,
    story_pending,
)

pytestmark = pytest.mark.integration

KEYS = JetstreamKeys("fm.plyr.list")
# a consumer that was following along: its cursor one second before the story.
BEFORE_STORY = STORY_TIMES[0] - 1_000_000


def fleet_config(hosts: Sequence[str], **overrides: object) -> ConsumerConfig:
    options: dict[str, object] = {"rotation_rewind_seconds": 3.0, "cursor_rewind_seconds": 1.0}
    options.update(overrides)
    return loopback_config(tuple(hosts), **options)


@pytest.mark.parametrize("zstd", [True, False], ids=["v2-zstd", "v2-plain"])
async def test_the_sample_story_on_the_v2_wire(
    redis_client: aioredis.Redis, docket: Docket, zstd: bool
) -> None:
    dictionary = story_dictionary() if zstd else None
    async with (
        ReplayServer(STORY, seq_base=5000, zstd_dictionary=dictionary) as replay,
        running_consumer(fleet_config([replay.url_v2]), redis_client, docket) as running,
    ):
        await eventually(lambda: running.consumer.cursor.done == LAST_STORY_TIME)
    assert running.enqueued == STORY_ENQUEUED
    assert await pending_tasks(docket) == story_pending()
    stats = running.consumer.stats
    assert (stats.frames, sum(stats.invalid.values())) == (15, 0)
    assert stats.dictionary_unavailable == (0 if zstd else 1)  # no dictionary: read plain
    log = replay.connections[0]
    assert (log.wire, log.zstd, log.wanted_collections) == ("v2", zstd, ("fm.plyr.*",))
    # the v2 position is the instance's seq of the last frame, kept with the instance.
    assert running.consumer.cursor.seq_for(replay.url_v2) == 5000 + len(STORY)
    assert await redis_client.get(KEYS.cursor_v2) == f"{5015} {replay.url_v2}".encode()


async def test_a_reconnect_to_the_same_v2_instance_resumes_from_its_seq(
    redis_client: aioredis.Redis, docket: Docket
) -> None:
    faults = ReplayFaults(drop_after=[4])
    async with (
        ReplayServer(STORY, seq_base=700, faults=faults) as replay,
        running_consumer(fleet_config([replay.url_v2]), redis_client, docket) as running,
    ):
        await eventually(lambda: running.consumer.cursor.done == LAST_STORY_TIME)
    assert running.enqueued == STORY_ENQUEUED
    # exact and inclusive: the fourth frame (seq 704) again, no time rewind.
    assert [log.cursor for log in replay.connections] == [None, 704]


async def test_a_blind_first_host_then_a_healthy_one_ends_like_a_fault_free_run(
    redis_client: aioredis.Redis, docket: Docket
) -> None:
    await redis_client.set(KEYS.cursor, str(BEFORE_STORY))
    # the blind host sends the story's identity and account events, then an identity
    # event every 10 ms, each half a second of stream later; 30 s of stream without a
    # plyr.fm commit is blindness here (production: JETSTREAM_BLIND_HOST_SECONDS).
    blind = ReplayFaults(blind=True, blind_step_us=500_000)
    async with (
        ReplayServer(STORY, faults=blind) as blind_host,
        ReplayServer(STORY, seq_base=90, zstd_dictionary=story_dictionary()) as healthy,
    ):
        config = fleet_config([blind_host.url, healthy.url_v2], blind_host_seconds=30)
        async with running_consumer(config, redis_client, docket) as running:
            await eventually(lambda: running.consumer.stats.rotations["blind_host"] == 1)
            await eventually(lambda: running.enqueued == STORY_ENQUEUED)
            consumer = running.consumer
            await eventually(lambda: consumer.cursor.flushed == LAST_STORY_TIME)
    # the final work equals the fault-free story: every change once, none lost.
    assert running.enqueued == STORY_ENQUEUED
    assert await pending_tasks(docket) == story_pending()
    assert consumer.stats.rotations == {"blind_host": 1}
    assert sum(consumer.stats.reconnects.values()) == 0
    # the healthy host resumed from the last plyr.fm position (the stored cursor, as
    # the blind host never sent a plyr.fm commit), rewound: not from where the blind
    # host's identity events had pushed the cursor.
    assert blind_host.connections[0].cursor == BEFORE_STORY - 3_000_000
    assert healthy.connections[0].cursor == BEFORE_STORY - 3_000_000
    assert blind_host.frames_sent > 2  # the trickle went on past the story's two events


async def test_while_blind_the_stored_cursor_stays_at_the_last_plyr_position(
    redis_client: aioredis.Redis, docket: Docket
) -> None:
    blind = ReplayFaults(blind=True, blind_step_us=100_000)
    async with ReplayServer(STORY, faults=blind) as blind_host:
        await redis_client.set(KEYS.cursor, str(BEFORE_STORY))
        config = fleet_config([blind_host.url], blind_host_seconds=3600)
        async with running_consumer(config, redis_client, docket) as running:
            consumer = running.consumer
            await eventually(lambda: (consumer.cursor.done or 0) > LAST_STORY_TIME + 5_000_000)
            await eventually(lambda: consumer.stats.frames > 60)
            await running.shutdown()
    # in memory the identity events moved the position on; Redis is told no more
    # than plyr.fm's commits are known complete up to, so a restart replays the window.
    assert await redis_client.get(KEYS.cursor) == str(BEFORE_STORY).encode()
    assert consumer.stats.rotations == {}  # an hour of stream had not passed


async def test_a_v1_cursor_given_to_a_v2_host_that_replays_an_hour_enqueues_nothing(
    redis_client: aioredis.Redis, docket: Docket
) -> None:
    async with (
        ReplayServer(STORY) as v1_host,
        running_consumer(fleet_config([v1_host.url]), redis_client, docket) as first,
    ):
        await eventually(lambda: first.consumer.cursor.flushed == LAST_STORY_TIME)
    assert first.enqueued == STORY_ENQUEUED
    # the v2 host reads the time_us cursor as a timestamp and replays an hour more
    # than asked (jetstream #343): the whole story again.
    replays = ReplayFaults(timestamp_cursor_replay_seconds=3600)
    async with (
        ReplayServer(STORY, seq_base=40, faults=replays) as v2_host,
        running_consumer(fleet_config([v2_host.url_v2]), redis_client, docket) as second,
    ):
        await eventually(lambda: second.consumer.stats.frames == len(STORY))
    assert second.enqueued == []  # the rev/CID guard absorbed it
    assert v2_host.connections[0].cursor == LAST_STORY_TIME - 3_000_000  # a time cursor
    skipped = second.consumer.stats.skipped
    assert (skipped["duplicate"], skipped["stale_rev"]) == (5, 5)
    assert await pending_tasks(docket) == story_pending()


async def test_cursor_too_old_resumes_from_the_oldest_available_and_is_counted(
    redis_client: aioredis.Redis, docket: Docket
) -> None:
    # the instance keeps seqs from 306 on (the story's frames 5..14); we stored 302.
    async with ReplayServer(STORY, seq_base=300, seq_floor=306) as replay:
        await redis_client.set(KEYS.cursor, str(STORY_TIMES[1]))
        await redis_client.set(KEYS.cursor_v2, f"302 {replay.url_v2}")
        async with running_consumer(fleet_config([replay.url_v2]), redis_client, docket) as running:
            await eventually(lambda: running.consumer.cursor.done == LAST_STORY_TIME)
    stats = running.consumer.stats
    assert stats.cursor_too_old == 1
    assert stats.reconnects["cursor_too_old"] == 1
    # the refused seq never upgraded; then a time cursor (rewound as for the same
    # host), which the host clamps to its floor with an #info OutdatedCursor.
    assert [log.cursor for log in replay.connections] == [STORY_TIMES[1] - 1_000_000]
    assert stats.skipped["info"] == 1
    assert running.enqueued == [recompute_of(5), *STORY_ENQUEUED[5:]]


async def test_rotation_through_a_fleet_where_some_hosts_refuse(
    redis_client: aioredis.Redis, docket: Docket
) -> None:
    refusing = ReplayFaults(refuse_connections=1_000_000)
    async with (
        ReplayServer(STORY, faults=refusing) as down_v1,
        ReplayServer(STORY, faults=ReplayFaults(refuse_connections=1_000_000)) as down_v2,
        ReplayServer(STORY, seq_base=10, zstd_dictionary=story_dictionary()) as healthy,
    ):
        hosts = [down_v1.url, down_v2.url_v2, healthy.url_v2]
        async with running_consumer(fleet_config(hosts), redis_client, docket) as running:
            await eventually(lambda: running.consumer.cursor.done == LAST_STORY_TIME)
    assert running.enqueued == STORY_ENQUEUED
    assert await pending_tasks(docket) == story_pending()
    assert running.consumer.stats.reconnects["refused"] == 2
    assert (len(down_v1.connections), len(down_v2.connections)) == (0, 0)  # never upgraded


async def test_missed_versions_reported_by_the_reconcile_loop_rotate_and_replay(
    redis_client: aioredis.Redis, docket: Docket
) -> None:
    async with ReplayServer(STORY) as first, ReplayServer(STORY, seq_base=3) as second:
        config = fleet_config([first.url, second.url_v2])
        async with running_consumer(config, redis_client, docket) as running:
            consumer = running.consumer
            await eventually(lambda: consumer.cursor.done == LAST_STORY_TIME)
            consumer.report_missed_versions(since_time_us=STORY_TIMES[8], count=2)
            await eventually(lambda: len(second.connections) == 1)
            resumed_at = STORY_TIMES[8] - 3_000_000
            again = len([time_us for time_us in STORY_TIMES if time_us >= resumed_at])
            await eventually(lambda: consumer.stats.frames == len(STORY) + again)
    assert consumer.stats.rotations == {"missed_versions": 1}
    assert consumer.stats.missed_version_reports == 2
    # from before the missed versions (rewound), on the next host of the fleet
    assert second.connections[0].cursor == STORY_TIMES[8] - 3_000_000
    assert running.enqueued == STORY_ENQUEUED  # re-delivered versions cost nothing


class RecordingMarkers:
    """a marker sink that fails its first call (Redis down, say), then records."""

    def __init__(self) -> None:
        self.failures_left = 1
        self.track_deletes: list[TrackDelete] = []
        self.resyncs: list[RepoResync] = []

    async def track_deleted(self, deletes: Sequence[DueDelete]) -> None:
        if self.failures_left:
            self.failures_left -= 1
            raise ConnectionError("the withdrawal store is down")
        self.track_deletes.extend(due.delete for due in deletes)

    async def repo_resynced(self, resyncs: Sequence[RepoResync]) -> None:
        self.resyncs.extend(resyncs)


async def test_track_deletes_and_syncs_reach_the_marker_sink_before_the_cursor_moves(
    redis_client: aioredis.Redis, docket: Docket
) -> None:
    owner = did(9)
    t0 = LAST_STORY_TIME + 1_000_000
    frames = [
        *STORY,
        track_delete(owner=owner, rkey=tid(3), rev=tid(40), time_us=t0),
        repo_sync(owner=owner, rev=41, time_us=t0 + 1),
    ]
    markers = RecordingMarkers()
    async with ReplayServer(frames, seq_base=1) as replay:
        config = fleet_config([replay.url_v2], batch_frames=1)
        async with running_consumer(config, redis_client, docket, markers=markers) as running:
            await eventually(lambda: running.consumer.cursor.done == t0 + 1)
    uri = f"at://{owner}/fm.plyr.track/{tid(3)}"
    # the failed call left the delete undone: replayed from the cursor, handed over again
    assert markers.track_deletes == [TrackDelete(t0, owner, tid(3), tid(40), uri, 17)]
    assert markers.resyncs == [RepoResync(t0 + 1, owner, tid(41), 18)]
    stats = running.consumer.stats
    assert (stats.track_deletes, stats.resyncs) == (1, 1)
    assert len(replay.connections) == 2
    assert running.enqueued == STORY_ENQUEUED


async def test_rotations_are_visible_in_the_status(
    redis_client: aioredis.Redis, docket: Docket
) -> None:
    await redis_client.set(KEYS.cursor, str(BEFORE_STORY))
    blind = ReplayFaults(blind=True, blind_step_us=500_000)
    async with ReplayServer(STORY, faults=blind) as blind_host, ReplayServer(STORY) as healthy:
        config = fleet_config([blind_host.url, healthy.url], blind_host_seconds=30)
        async with running_consumer(config, redis_client, docket) as running:
            await eventually(lambda: running.consumer.stats.rotations["blind_host"] == 1)
            await eventually(lambda: running.consumer.cursor.done == LAST_STORY_TIME)
            await running.shutdown()  # publishes the counters
    status = await read_status(redis_client, "fm.plyr.list")
    assert status.stats["rotations:blind_host"] == "1"
    assert status.stats["plyr_anchor_time_us"] == str(LAST_STORY_TIME)
    rendered = Console(width=200, record=True)
    rendered.print(render_status(status))
    text = rendered.export_text()
    assert "rotations:blind_host" in text
    assert "plyr.fm silent for" in text


async def test_a_retired_zstd_dictionary_is_fetched_again(
    redis_client: aioredis.Redis, docket: Docket
) -> None:
    async with ReplayServer(STORY, seq_base=20, zstd_dictionary=story_dictionary()) as replay:
        first_id = replay.dictionary_id
        async with running_consumer(fleet_config([replay.url_v2]), redis_client, docket) as running:
            consumer = running.consumer
            await eventually(lambda: consumer.cursor.done == LAST_STORY_TIME)
            replay.retrain(
                train_dictionary([f"{n} {f}".encode() for n, f in enumerate(STORY * 30)])
            )
            consumer.report_missed_versions()  # leave the host: the reconnect asks for the old id
            await eventually(lambda: len(replay.connections) == 2)
            # the same instance: its exact seq again (inclusive), the last frame once more
            await eventually(lambda: consumer.stats.frames == len(STORY) + 1)
    assert [log.cursor for log in replay.connections] == [None, 20 + len(STORY)]
    assert consumer.stats.reconnects["dictionary_retired"] == 1
    assert [log.zstd for log in replay.connections] == [True, True]
    assert replay.dictionary_id != first_id
    assert sum(consumer.stats.invalid.values()) == 0  # the new dictionary decodes
    assert running.enqueued == STORY_ENQUEUED
