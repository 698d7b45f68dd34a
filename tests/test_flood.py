"""a flood from one DID: paced, coalesced, capped, and nobody else's recomputes pushed back.

the policy itself (jetstream.flood) as pure logic with an explicit clock, its
guarantees as properties, then the consumer end to end: the real websockets client
against the replay server streaming thousands of one DID's commits interleaved with
other people's edits, docket on the real redis-server, what docket holds read back
with docket's own snapshot.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from docket import Docket, Worker
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.loopback.servers import RedisServer
from jetstream import JetstreamConsumer, ReplayServer
from jetstream.config import ConsumerConfig
from jetstream.contract import forget_key, recompute_key
from jetstream.flood import PRUNE_INTERVAL_SECONDS, Admission, FloodControl, FloodLimits
from tests.support.jetstream_world import (
    cid,
    did,
    eventually,
    fast_backoff,
    list_commit,
    list_delete,
    loopback_config,
    tid,
    track_uri,
)
from worker.settings import Settings
from worker.tasks.playlist import PLAYLIST_TASKS
from worker.wiring import consumer_config

NOW = 1_800_000_000.0
SETTLE = 2.0
LIMITS = FloodLimits(changes_per_minute=60, burst=10, max_pending=50)  # 1 s apart past 10


def uri(owner: int, playlist: int) -> str:
    return f"at://{did(owner)}/fm.plyr.list/{tid(playlist)}"


# --- the policy -------------------------------------------------------------------------------


def test_within_the_burst_every_task_starts_after_the_settle_delay() -> None:
    flood = FloodControl(LIMITS)
    admissions = [
        flood.admit(did(1), uri(1, n), now=NOW, settle=SETTLE) for n in range(LIMITS.burst)
    ]
    assert admissions == [Admission(NOW + SETTLE, deferred=False)] * LIMITS.burst


def test_past_the_burst_new_tasks_are_paced_not_dropped() -> None:
    flood = FloodControl(LIMITS)
    for n in range(LIMITS.burst):
        flood.admit(did(1), uri(1, n), now=NOW, settle=SETTLE)
    paced = [flood.admit(did(1), uri(1, 100 + n), now=NOW, settle=SETTLE) for n in range(5)]
    assert paced == [Admission(NOW + SETTLE + k * LIMITS.interval, True) for k in range(1, 6)]


def test_edits_of_a_pending_playlist_take_over_its_slot_at_no_cost() -> None:
    flood = FloodControl(LIMITS)
    for n in range(LIMITS.burst + 3):
        flood.admit(did(1), uri(1, n), now=NOW, settle=SETTLE)
    deferred_slot = NOW + SETTLE + 3 * LIMITS.interval
    # a thousand more edits of the last (deferred) playlist keep its slot...
    for _ in range(1000):
        again = flood.admit(did(1), uri(1, LIMITS.burst + 2), now=NOW + 1, settle=SETTLE)
        assert again == Admission(deferred_slot, deferred=True)
    # ...and cost no token: the next new playlist is only one interval further.
    after = flood.admit(did(1), uri(1, 999), now=NOW + 1, settle=SETTLE)
    assert after == Admission(NOW + SETTLE + 4 * LIMITS.interval, deferred=True)
    assert flood.pending(did(1)) == LIMITS.burst + 4


def test_an_undeferred_pending_task_is_still_pushed_out_by_each_edit() -> None:
    # the debounce is unchanged for everyone within their pace: the newest edit's
    # settle delay counts.
    flood = FloodControl(LIMITS)
    assert flood.admit(did(1), uri(1, 1), now=NOW, settle=SETTLE) == Admission(NOW + 2, False)
    assert flood.admit(did(1), uri(1, 1), now=NOW + 1.5, settle=SETTLE) == Admission(
        NOW + 3.5, False
    )


def test_the_bucket_refills_at_the_configured_pace() -> None:
    flood = FloodControl(LIMITS)
    for n in range(LIMITS.burst):
        flood.admit(did(1), uri(1, n), now=NOW, settle=0)
    assert flood.admit(did(1), uri(1, 50), now=NOW, settle=0) == Admission(NOW + 1, True)
    # a minute later the bucket is full again: a whole burst, undeferred.
    later = NOW + 61
    for n in range(LIMITS.burst):
        assert flood.admit(did(1), uri(1, 200 + n), now=later, settle=0) == Admission(later, False)


def test_past_the_pending_cap_changes_are_shed_until_tasks_fall_due() -> None:
    flood = FloodControl(LIMITS)
    admitted = [flood.admit(did(1), uri(1, n), now=NOW, settle=SETTLE) for n in range(60)]
    assert sum(admission is not None for admission in admitted) == LIMITS.max_pending
    assert admitted[LIMITS.max_pending :] == [None] * 10
    assert flood.pending(did(1)) == LIMITS.max_pending
    # an edit of a playlist that holds a slot is still taken (it adds no task).
    assert flood.admit(did(1), uri(1, 0), now=NOW, settle=SETTLE) is not None
    # once the first tasks have fallen due, new playlists get slots again.
    assert flood.admit(did(1), uri(1, 70), now=NOW + SETTLE + 0.5, settle=SETTLE) is not None


def test_one_dids_flood_never_touches_another_did() -> None:
    flood = FloodControl(LIMITS)
    for n in range(5000):
        flood.admit(did(1), uri(1, n), now=NOW, settle=SETTLE)
    assert flood.admit(did(2), uri(2, 1), now=NOW, settle=SETTLE) == Admission(NOW + 2, False)


def test_idle_dids_are_forgotten() -> None:
    flood = FloodControl(LIMITS)
    for owner in range(1000):
        flood.admit(did(owner), uri(owner, 1), now=NOW, settle=SETTLE)
    for n in range(40):
        flood.admit(did(5000), uri(5000, n), now=NOW, settle=SETTLE)
    assert flood.tracked_dids == 1001
    # past the pruning interval: everyone's bucket is full and every task has fallen
    # due, except the flooder's (40 changes at 1 a second are paced beyond it); the
    # due ones have finished (docket keeps none of them: their bytes are released).
    later = NOW + PRUNE_INTERVAL_SECONDS
    flood.release(flood.due_for_check(later, limit=10_000))
    assert flood.held_tasks == 0
    flood.admit(did(1), uri(1, 2), now=NOW + PRUNE_INTERVAL_SECONDS, settle=SETTLE)
    assert flood.tracked_dids == 1  # did(1), just admitted again
    assert flood.admit(did(5000), uri(5000, 99), now=NOW + 61, settle=0) == Admission(
        NOW + 61, False
    )


def test_limits_must_be_positive() -> None:
    for bad in ({"changes_per_minute": 0}, {"burst": 0}, {"max_pending": 0}):
        with pytest.raises(ValueError, match="positive"):
            FloodLimits(**bad)


def test_settings_reach_the_consumer() -> None:
    settings = Settings(
        _env_file=None,
        jetstream_did_changes_per_minute=120,
        jetstream_did_burst=5,
        jetstream_did_max_pending=77,
    )
    assert consumer_config(settings).flood == FloodLimits(120, 5, 77)
    assert consumer_config(Settings(_env_file=None)).flood == FloodLimits()


# --- the bytes, held until a task finishes ---------------------------------------------------

BYTES = FloodLimits(burst=100, max_pending_bytes=3_000, max_total_pending_bytes=5_000)


def test_bytes_stay_held_after_a_task_falls_due_until_it_is_known_gone() -> None:
    """before: released when due, so a task retrying for plyr.fm's ingest held Redis
    bytes nobody counted and the next ones were admitted on top."""
    flood = FloodControl(BYTES)
    assert flood.admit(did(1), uri(1, 1), now=NOW, settle=SETTLE, size=2_000) is not None
    later = NOW + 100  # long due, still retrying
    assert flood.admit(did(1), uri(1, 2), now=later, settle=SETTLE, size=2_000) is None
    assert flood.admit(did(2), uri(2, 1), now=later, settle=SETTLE, size=2_000) is not None
    assert flood.admit(did(3), uri(3, 1), now=later, settle=SETTLE, size=2_000) is None  # total
    assert flood.held_bytes == 4_000
    # docket no longer keeps did(1)'s task: its bytes are free, for anyone
    checked = flood.due_for_check(later, limit=10)
    assert checked[0][0] == uri(1, 1)
    assert flood.release(checked[:1]) == 2_000
    assert flood.held_by(did(1)) == 0
    assert flood.admit(did(3), uri(3, 1), now=later, settle=SETTLE, size=2_000) is not None


def test_a_task_under_a_held_key_replaces_its_bytes_and_a_stale_check_frees_nothing() -> None:
    flood = FloodControl(BYTES)
    key = "recompute:" + uri(1, 1)
    flood.admit(did(1), uri(1, 1), now=NOW, settle=SETTLE, size=1_000, task_key=key)
    (stale,) = flood.due_for_check(NOW + 10, limit=10)  # a check begins ...
    # ... an edit of the playlist (its task retrying) replaces the task under the key:
    # docket overwrites the arguments, so the bytes are replaced, never added
    flood.admit(did(1), uri(1, 1), now=NOW + 10, settle=SETTLE, size=1_500, task_key=key)
    assert flood.held_bytes == 1_500
    # ... and the check, begun before it, found the old run gone: nothing freed
    assert flood.release([stale]) == 0
    assert flood.held_bytes == 1_500
    # a delete's forget is another docket key: the cancelled recompute's record still
    # holds its arguments, so both count until each is gone
    flood.admit(did(1), uri(1, 1), now=NOW + 11, settle=0, size=500, task_key="forget:x")
    assert flood.held_bytes == 2_000
    assert flood.held_tasks == 2


def test_checks_cycle_through_the_held_tasks_and_skip_those_not_due() -> None:
    flood = FloodControl(BYTES)
    for n in range(5):
        flood.admit(did(1), uri(1, n), now=NOW, settle=SETTLE, size=10)
    flood.admit(did(1), uri(1, 9), now=NOW, settle=600, size=10)  # not due: cannot have ended
    first = flood.due_for_check(NOW + 10, limit=2)
    second = flood.due_for_check(NOW + 10, limit=2)
    third = flood.due_for_check(NOW + 10, limit=2)
    keys = [key for key, _ in first + second + third]
    assert keys == [uri(1, n) for n in (0, 1, 2, 3, 4, 0)]


def test_restored_bytes_count_once() -> None:
    flood = FloodControl(BYTES)
    flood.restore(did(1), "recompute:a", 2_000, now=NOW)
    flood.restore(did(1), "recompute:a", 2_000, now=NOW)  # found twice: held once
    assert flood.held_bytes == 2_000
    assert flood.admit(did(1), uri(1, 1), now=NOW, settle=SETTLE, size=1_001) is None
    assert flood.admit(did(1), "a", now=NOW, settle=SETTLE, size=1_500, task_key="recompute:a")
    assert flood.held_bytes == 1_500


def test_a_did_holding_bytes_is_not_forgotten() -> None:
    flood = FloodControl(BYTES)
    flood.admit(did(1), uri(1, 1), now=NOW, settle=SETTLE, size=100)
    flood.admit(did(2), uri(2, 1), now=NOW + PRUNE_INTERVAL_SECONDS, settle=SETTLE)
    assert flood.tracked_dids == 2
    assert flood.held_by(did(1)) == 100


# --- the guarantees, as properties ------------------------------------------------------------

changes = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=3),  # which DID
        st.integers(min_value=0, max_value=80),  # which playlist
        st.floats(min_value=0, max_value=3),  # seconds since the previous change
    ),
    min_size=1,
    max_size=400,
)


@settings(max_examples=150, deadline=None)
@given(changes, st.integers(min_value=1, max_value=20), st.integers(min_value=1, max_value=60))
def test_the_flood_guarantees(
    stream: list[tuple[int, int, float]], burst: int, max_pending: int
) -> None:
    limits = FloodLimits(changes_per_minute=120, burst=burst, max_pending=max_pending)
    flood = FloodControl(limits)
    now = NOW
    latest: dict[str, float] = {}  # playlist -> when its latest change's task runs
    starts: dict[int, list[float]] = defaultdict(list)  # DID -> starts of its new tasks
    for owner, playlist, step in stream:
        now += step
        playlist_uri = uri(owner, playlist)
        pending_before = latest.get(playlist_uri, 0.0) > now
        admission = flood.admit(did(owner), playlist_uri, now=now, settle=SETTLE)
        if admission is None:
            # shed only when the DID really holds its cap of pending tasks.
            assert not pending_before
            assert sum(when > now for u, when in latest.items() if did(owner) in u) >= max_pending
            continue
        # never sooner than the settle delay, never later than the pace allows.
        assert admission.when >= now + SETTLE
        assert admission.deferred == (admission.when > now + SETTLE)
        if not pending_before:
            starts[owner].append(admission.when - SETTLE)
        latest[playlist_uri] = admission.when
        pending = sum(when > now for u, when in latest.items() if did(owner) in u)
        assert pending <= max_pending
    for owner_starts in starts.values():
        # the pace: within any window, at most burst + window / interval new tasks start.
        owner_starts.sort()
        for i, first in enumerate(owner_starts):
            for j in range(i, len(owner_starts)):
                window = owner_starts[j] - first
                assert j - i + 1 <= burst + window / limits.interval + 1e-6


# --- the consumer end to end ------------------------------------------------------------------

FLOODER = 900
OTHERS = range(1, 31)
FLOOD_PLAYLISTS = 40
FLOOD_ROUNDS = 50  # 2,000 commits from one DID
T0_US = int((NOW - 300) * 1_000_000)


class Stream:
    """frames with increasing time_us and per-repo revs, as a relay would send them."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.revs: dict[int, int] = defaultdict(int)
        self.latest: dict[str, tuple[str, list[str]]] = {}  # playlist uri -> (cid, tracks)

    def edit(self, owner: int, playlist: int, version: int) -> None:
        self.revs[owner] += 1
        record_cid = cid(f"{owner}/{playlist}/{version}")
        tracks = [track_uri(version), track_uri(1000 + playlist)]
        self.frames.append(
            list_commit(
                owner=did(owner),
                rkey=tid(playlist),
                rev=tid(self.revs[owner]),
                record_cid=record_cid,
                tracks=tracks,
                time_us=T0_US + len(self.frames),
            )
        )
        self.latest[uri(owner, playlist)] = (record_cid, tracks)

    def delete(self, owner: int, playlist: int) -> None:
        self.revs[owner] += 1
        self.frames.append(
            list_delete(
                owner=did(owner),
                rkey=tid(playlist),
                rev=tid(self.revs[owner]),
                time_us=T0_US + len(self.frames),
            )
        )
        self.latest.pop(uri(owner, playlist), None)


async def scheduled(docket: Docket) -> dict[str, tuple[float, tuple[Any, ...]]]:
    """docket key -> (when, arguments) of every pending task."""
    snapshot = await docket.snapshot()
    return {
        execution.key: (execution.when.timestamp(), tuple(execution.args))
        for execution in snapshot.future
    }


async def consume(
    stream: Stream,
    config: ConsumerConfig,
    redis: aioredis.Redis,
    docket: Docket,
    *,
    clock: Callable[[], float],
) -> JetstreamConsumer:
    """the real consumer on `clock` until it has handled every frame of `stream`."""
    async with ReplayServer(stream.frames) as replay:
        consumer = JetstreamConsumer(
            config=dataclasses.replace(config, hosts=(replay.url,)),
            redis=redis,
            docket=docket,
            tasks=PLAYLIST_TASKS,
            clock=clock,
            backoff=fast_backoff(),
        )
        stop = asyncio.Event()
        running = asyncio.create_task(consumer.run(stop))
        try:
            await eventually(lambda: consumer.stats.frames == len(stream.frames), within=30)
        finally:
            stop.set()
            await asyncio.wait_for(running, 10)
    return consumer


@pytest.mark.integration
async def test_a_flooding_did_is_paced_and_everyone_else_keeps_their_settle_delay(
    redis_client: aioredis.Redis, docket: Docket
) -> None:
    stream = Stream()
    for round_ in range(FLOOD_ROUNDS):
        for playlist in range(FLOOD_PLAYLISTS):
            stream.edit(FLOODER, playlist, round_)
            if (round_ * FLOOD_PLAYLISTS + playlist) % 37 == 0:  # other people, throughout
                other = OTHERS[(round_ * FLOOD_PLAYLISTS + playlist) // 37 % len(OTHERS)]
                stream.edit(other, 1, round_)
    config = loopback_config((), debounce_seconds=SETTLE, flood=LIMITS)
    consumer = await consume(stream, config, redis_client, docket, clock=lambda: NOW)

    pending = await scheduled(docket)
    assert set(pending) == {recompute_key(playlist) for playlist in stream.latest}
    for playlist, (record_cid, tracks) in stream.latest.items():
        when, args = pending[recompute_key(playlist)]
        assert args[0] == playlist
        assert (args[1], args[3]) == (record_cid, tracks)  # the newest state, coalesced
        if did(FLOODER) not in playlist:
            assert when == NOW + SETTLE  # not pushed back by the flood
    flooder_whens = sorted(when for key, (when, _) in pending.items() if did(FLOODER) in key)
    # the first `burst` playlists right away, the others one interval apart after them.
    assert flooder_whens == [NOW + SETTLE] * LIMITS.burst + [
        NOW + SETTLE + k * LIMITS.interval for k in range(1, FLOOD_PLAYLISTS - LIMITS.burst + 1)
    ]
    stats = consumer.stats
    assert stats.flood_deferred == (FLOOD_PLAYLISTS - LIMITS.burst) * FLOOD_ROUNDS
    assert stats.recomputes == stats.changes  # every commit enqueued: coalesced, none lost
    assert "flood_shed" not in stats.skipped


@pytest.mark.integration
async def test_a_did_creating_thousands_of_playlists_holds_at_most_its_cap_in_the_queue(
    redis_client: aioredis.Redis, docket: Docket
) -> None:
    stream = Stream()
    for playlist in range(1000):
        stream.edit(FLOODER, playlist, 0)
        if playlist % 50 == 0:
            stream.edit(OTHERS[playlist // 50], 1, 0)
    stream.delete(FLOODER, 0)  # holds a slot: its recompute becomes a forget
    stream.delete(FLOODER, 999)  # was shed: nothing pending to cancel, no forget
    config = loopback_config((), debounce_seconds=SETTLE, flood=LIMITS)
    consumer = await consume(stream, config, redis_client, docket, clock=lambda: NOW)

    pending = await scheduled(docket)
    flooder_keys = {key for key in pending if did(FLOODER) in key}
    assert len(flooder_keys) == LIMITS.max_pending  # the queue's growth is bounded
    assert forget_key(uri(FLOODER, 0)) in flooder_keys
    assert recompute_key(uri(FLOODER, 0)) not in flooder_keys
    assert pending[forget_key(uri(FLOODER, 0))][0] == NOW  # the slot was not deferred
    others = {key: value for key, value in pending.items() if did(FLOODER) not in key}
    assert len(others) == 20
    assert all(when == NOW + SETTLE for when, _ in others.values())
    stats = consumer.stats
    assert (
        stats.skipped["flood_shed"] == 1000 - LIMITS.max_pending + 1
    )  # counted, with 999's delete
    assert stats.recomputes == LIMITS.max_pending + 20
    assert stats.forgets == 1


# --- eventually: a worker runs the flooder's newest state --------------------------------------


@pytest.mark.integration
async def test_the_flooders_newest_state_is_recomputed_in_the_end(
    redis_client: aioredis.Redis, redis_server: RedisServer, docket: Docket
) -> None:
    """on the real clock with a fast pace, through docket's own scheduler and a worker:
    every playlist, the flooder's paced ones included, is recomputed once, at its
    newest state."""
    limits = FloodLimits(changes_per_minute=1200, burst=5, max_pending=100)  # 50 ms apart
    stream = Stream()
    for round_ in range(20):
        for playlist in range(30):
            stream.edit(FLOODER, playlist, round_)
        stream.edit(OTHERS[round_ % 10], 1, round_)
    config = loopback_config((), debounce_seconds=0.2, flood=limits)
    consumer = await consume(stream, config, redis_client, docket, clock=time.time)
    assert consumer.stats.flood_deferred > 0

    runs: list[tuple[str, str]] = []

    async def recompute_playlist(
        playlist_uri: str, cid: str, rev: str, track_uris: list[str]
    ) -> None:
        # the worker's compute is tested elsewhere; here only what it is asked to do.
        runs.append((playlist_uri, cid))

    async with Docket(name=docket.name, url=redis_server.url) as worker_docket:
        worker_docket.register(recompute_playlist)
        worker = Worker(
            worker_docket,
            concurrency=4,
            minimum_check_interval=timedelta(milliseconds=10),
            scheduling_resolution=timedelta(milliseconds=10),
            schedule_automatic_tasks=False,
        )
        async with worker:
            await worker.run_until_finished()

    assert sorted(runs) == sorted((playlist, state[0]) for playlist, state in stream.latest.items())
