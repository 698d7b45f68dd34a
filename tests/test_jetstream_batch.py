"""one batch end to end on the embedded parts (fakeredis for the state, docket on
memory://): the wiring `plyr-recs run` uses, the cursor rule, ordering inside a batch."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import fakeredis
import pytest
import redis.asyncio as aioredis
from docket import Docket

from jetstream import Enqueued, ListChange, ReplayServer
from jetstream.batch import BatchProcessor
from jetstream.contract import forget_key, recompute_key
from jetstream.cursor import Cursor, CursorStore
from jetstream.enqueue import FORGET, RECOMPUTE, EnqueueFailed, Enqueuer, EnqueueReport, TaskSink
from jetstream.frames import FrameLimits
from jetstream.guard import RevGuard
from jetstream.keys import JetstreamKeys
from jetstream.stats import ConsumerStats
from tests.support.jetstream_world import (
    Pending,
    cid,
    did,
    eventually,
    list_commit,
    list_delete,
    loopback_config,
    pending_tasks,
    running_consumer,
    tid,
    track_uri,
)
from tests.support.samples import story_frames
from worker.tasks.playlist import PLAYLIST_TASKS, TASKS

KEYS = JetstreamKeys("fm.plyr.list")
OWNER = did(77)
URI = f"at://{OWNER}/fm.plyr.list/3m64hnzv42222"
NOW = 1_800_000_000.0  # the injected clock, in seconds
T0 = int(NOW * 1_000_000)


def enqueuer(docket: Docket) -> Enqueuer:
    return Enqueuer(docket, tasks=PLAYLIST_TASKS, debounce_seconds=2.0, clock=lambda: NOW)


def edit(rev: int, seed: str, at: int) -> bytes:
    return list_commit(
        owner=OWNER,
        rkey="3m64hnzv42222",
        rev=tid(rev),
        record_cid=cid(seed),
        tracks=[track_uri(rev)],
        time_us=at,
    )


def delete(rev: int, at: int) -> bytes:
    return list_delete(owner=OWNER, rkey="3m64hnzv42222", rev=tid(rev), time_us=at)


@pytest.fixture
async def state() -> AsyncIterator[aioredis.Redis]:
    client = fakeredis.aioredis.FakeRedis()
    yield client
    await client.aclose()


@pytest.fixture
async def docket() -> AsyncIterator[Docket]:
    async with Docket(name="batch-test", url="memory://") as memory_docket:
        yield memory_docket


def processor(
    state: aioredis.Redis,
    sink: TaskSink,
    enqueued: list[Enqueued] | None = None,
) -> tuple[BatchProcessor, Cursor, ConsumerStats]:
    cursor = Cursor(CursorStore(state, KEYS))
    stats = ConsumerStats()
    batch = BatchProcessor(
        limits=FrameLimits(),
        guard=RevGuard(state, KEYS, ttl_seconds=3600),
        enqueuer=sink,
        cursor=cursor,
        stats=stats,
        observer=None if enqueued is None else enqueued.append,
        clock=lambda: NOW,
    )
    return batch, cursor, stats


def test_the_consumer_enqueues_only_registered_tasks() -> None:
    assert {RECOMPUTE, FORGET} <= {task.__name__ for task in TASKS}


async def test_create_delete_recreate_inside_one_batch_keeps_the_order(
    state: aioredis.Redis, docket: Docket
) -> None:
    enqueued: list[Enqueued] = []
    sink = enqueuer(docket)
    batch, cursor, _ = processor(state, sink, enqueued)
    await batch.process([edit(1, "a", T0 + 1), delete(2, T0 + 2), edit(3, "c", T0 + 3)])
    assert [(e.task, e.rev) for e in enqueued] == [
        ("recompute", tid(1)),
        ("forget", tid(2)),
        ("recompute", tid(3)),
    ]
    assert await pending_tasks(docket) == {
        forget_key(URI): Pending("forget_playlist", (URI, tid(2))),
        recompute_key(URI): Pending("recompute_playlist", (URI, cid("c"), tid(3), [track_uri(3)])),
    }
    assert cursor.done == T0 + 3


async def test_create_then_delete_inside_one_batch_leaves_no_recompute(
    state: aioredis.Redis, docket: Docket
) -> None:
    batch, _, _ = processor(state, enqueuer(docket))
    await batch.process([edit(1, "a", T0 + 1), delete(2, T0 + 2)])
    assert await pending_tasks(docket) == {
        forget_key(URI): Pending("forget_playlist", (URI, tid(2)))
    }


async def test_the_debounce_keeps_the_newest_state_and_its_settle_time(
    state: aioredis.Redis, docket: Docket
) -> None:
    batch, _, _ = processor(state, enqueuer(docket))
    await batch.process([edit(1, "a", T0 + 1)])
    await batch.process([edit(2, "b", T0 + 2)])
    snapshot = await docket.snapshot()
    (execution,) = snapshot.future
    assert execution.args[1:3] == (cid("b"), tid(2))
    assert execution.when.timestamp() == pytest.approx(NOW + 2.0)


class FailingSink:
    """docket going away mid-batch, as `Enqueuer` reports it."""

    def __init__(self) -> None:
        self.calls = 0

    async def enqueue(self, changes: Sequence[ListChange]) -> EnqueueReport:
        self.calls += 1
        raise EnqueueFailed("docket refused the batch")


async def test_a_failed_enqueue_moves_neither_the_cursor_nor_the_guard(
    state: aioredis.Redis, docket: Docket
) -> None:
    frames = [edit(1, "a", T0 + 1), edit(2, "b", T0 + 2)]
    failing = FailingSink()
    batch, cursor, stats = processor(state, failing)
    with pytest.raises(EnqueueFailed):
        await batch.process(frames)
    assert failing.calls == 1
    assert cursor.done is None
    assert await state.get(KEYS.rev(URI)) is None
    assert stats.frames == 0  # counted when the batch is done, not twice on the replay

    enqueued: list[Enqueued] = []
    sink = enqueuer(docket)
    batch, cursor, stats = processor(state, sink, enqueued)
    await batch.process(frames)  # the replay after the fault: nothing was lost
    assert [e.rev for e in enqueued] == [tid(1), tid(2)]
    assert cursor.done == T0 + 2
    assert stats.frames == 2


async def test_a_host_clock_in_the_future_cannot_drag_the_cursor_there(
    state: aioredis.Redis, docket: Docket
) -> None:
    batch, cursor, stats = processor(state, enqueuer(docket))
    far_future = T0 + 10 * 86_400 * 1_000_000
    await batch.process([edit(1, "a", far_future)])
    assert cursor.done is None  # a frame past the skew never moves the cursor
    assert stats.future_frames == 1


async def test_the_embedded_wiring_runs_the_story(state: aioredis.Redis, docket: Docket) -> None:
    frames = story_frames()
    async with (
        ReplayServer(frames) as replay,
        running_consumer(loopback_config((replay.url,)), state, docket) as running,
    ):
        await eventually(lambda: running.consumer.cursor.done == 1763700021200000)
        await eventually(lambda: running.consumer.cursor.flushed == 1763700021200000)
    assert len(running.enqueued) == 9
    assert {pending.function for pending in (await pending_tasks(docket)).values()} == {
        "recompute_playlist",
        "forget_playlist",
    }
    assert await state.get(KEYS.cursor) == b"1763700021200000"
