"""one way into the cache: the playlist's lock with a fencing token checked at the
write, and the version rule (no state ever goes back), through the tasks as a
docket worker runs them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from docket import Docket

from engine.cache import cache_key
from engine.types import PlaylistRow
from jetstream.contract import forget_key, recompute_key
from jetstream.guard import GuardState
from jetstream.keys import JetstreamKeys
from tests.support.world import (
    P1_ID,
    P1_URI,
    HeldStore,
    cached,
    drain,
    embedded_services,
    enqueue,
    story_commits,
)
from worker.recs.services import Services
from worker.recs.version import database_rev, rev_at, version_token
from worker.store.lock import lock_key
from worker.tasks.playlist import forget_playlist, recompute_playlist

COMMITS = story_commits()
P1_CREATE, P1_THREE, P1_EIGHT = COMMITS[:3]
LATER_REV = "3zzzzzzzzzz22"  # a TID after every rev of the story


@pytest.fixture
async def docket() -> AsyncIterator[Docket]:
    async with Docket(name=f"test-{uuid.uuid4().hex[:8]}", url="memory://") as docket:
        yield docket


def commit_time(rev_of_commit: str) -> datetime:
    """the moment a story commit was made (its rev is a TID of it)."""
    alphabet = "234567abcdefghijklmnopqrstuvwxyz"
    value = 0
    for character in rev_of_commit:
        value = value * 32 + alphabet.index(character)
    return datetime.fromtimestamp((value >> 10) / 1e6, UTC)


def test_a_rev_minted_from_a_time_sorts_with_the_commits_of_that_time() -> None:
    made = commit_time(P1_EIGHT.rev)
    assert rev_at(made) <= P1_EIGHT.rev < rev_at(made + timedelta(milliseconds=1))
    assert rev_at(made - timedelta(seconds=1)) < P1_EIGHT.rev


async def test_a_run_whose_lease_lapsed_cannot_cache_a_playlist_deleted_meanwhile(
    docket: Docket,
) -> None:
    store = HeldStore()
    async with embedded_services(store=store, worker_redelivery_seconds=1) as services:
        await enqueue(docket, P1_EIGHT)
        running = asyncio.create_task(drain(docket, services))
        await asyncio.wait_for(store.entered.wait(), 10)
        # the lease is the task's declared dependency (WORKER_REDELIVERY_SECONDS here: 1 s)
        assert 0 < await services.redis.pttl(lock_key(P1_ID)) <= 1000
        # the run is paused mid-way (a long GC, a stalled event loop) and its lease
        # runs out: the lock is gone, and the delete's forget takes it and finishes
        await services.redis.delete(lock_key(P1_ID))
        await docket.add(forget_playlist, key=forget_key(P1_URI))(P1_URI, LATER_REV)
        deadline = asyncio.get_running_loop().time() + 10
        while services.counts["forget:done"] + services.counts["forget:unknown"] == 0:
            assert asyncio.get_running_loop().time() < deadline, dict(services.counts)
            await asyncio.sleep(0.01)
        store.release.set()  # the paused run resumes and tries to write
        await asyncio.wait_for(running, 30)
        assert services.counts["retried:lease_lost"] == 1
        assert services.counts["dropped:deleted"] == 1  # its retry finds the delete
        assert await cached(services, P1_ID, P1_EIGHT.cid) is None
        assert await services.cache.get_state(P1_ID) is None


async def accept(services: Services, uri: str, rev: str, cid: str | None) -> None:
    """what the consumer records once it enqueued a change (its rev guard)."""
    await services.redis.set(
        JetstreamKeys("fm.plyr.list").rev(uri), GuardState(rev, cid).encode(), ex=60
    )


async def test_a_reconcile_pass_that_read_before_an_edit_never_rolls_the_state_back(
    docket: Docket,
) -> None:
    async with embedded_services() as services:
        # the firehose's newest edit ran: the state is that version
        await accept(services, P1_URI, P1_EIGHT.rev, P1_EIGHT.cid)
        await enqueue(docket, P1_EIGHT)
        await drain(docket, services)
        state = await services.cache.get_state(P1_ID)
        assert state is not None
        assert state.token == P1_EIGHT.cid
        # a pass read plyr.fm's row (the previous version, ingested before the edit
        # was committed) and enqueues it after the edit's task ran
        ingested = commit_time(P1_THREE.rev) + timedelta(milliseconds=500)
        assert ingested < commit_time(P1_EIGHT.rev)
        stale_rev = database_rev(_row(P1_THREE.cid, ingested), None)
        await docket.add(recompute_playlist, key=recompute_key(P1_URI))(
            P1_URI, P1_THREE.cid, stale_rev, P1_THREE.track_uris
        )
        # and an even older redelivery of the firehose
        await enqueue(docket, P1_CREATE)
        await drain(docket, services)
        state = await services.cache.get_state(P1_ID)
        assert state is not None
        assert state.token == P1_EIGHT.cid
        assert state.rev == P1_EIGHT.rev
        assert services.counts["dropped:superseded"] == 2
        assert await cached(services, P1_ID, P1_THREE.cid) is None


async def test_a_playlist_recreated_after_its_delete_heals_from_the_database(
    docket: Docket,
) -> None:
    async with embedded_services() as services:
        delete_rev = P1_EIGHT.rev
        await docket.add(forget_playlist, key=forget_key(P1_URI))(P1_URI, delete_rev)
        await drain(docket, services)
        # re-created: plyr.fm's row is updated after the delete; the reconcile loop
        # enqueues that version with the rev its database time gives
        recreated = commit_time(delete_rev) + timedelta(seconds=5)
        rev = database_rev(_row(P1_THREE.cid, recreated), None)
        await docket.add(recompute_playlist, key=recompute_key(P1_URI))(
            P1_URI, P1_THREE.cid, rev, P1_THREE.track_uris
        )
        await drain(docket, services)
        assert services.counts["dropped:deleted"] == 0
        assert await cached(services, P1_ID, P1_THREE.cid) is not None


async def test_a_task_without_a_rev_is_refused(docket: Docket) -> None:
    async with embedded_services() as services:
        await docket.add(recompute_playlist)(P1_URI, P1_EIGHT.cid, "", P1_EIGHT.track_uris)
        await drain(docket, services)
        assert services.counts["dropped:permanent"] == 1
        assert not await services.redis.exists(cache_key(P1_ID, P1_EIGHT.cid))


def _row(cid: str, updated_at: datetime) -> PlaylistRow:
    row = PlaylistRow(P1_ID, "did:plc:owner", P1_URI, cid, False, updated_at, None)
    assert version_token(row) == cid
    return row
