"""what one host or one account can do to the stream's shared state (issue 16):
a frame dated in the future must not move the saved cursor, and task arguments
are bounded so one account cannot fill Redis."""

from __future__ import annotations

import time
from collections import Counter

import pytest
import redis.asyncio as aioredis
from docket import Docket

from jetstream import ReplayServer
from jetstream.batch import FUTURE_SKEW_SECONDS
from jetstream.contract import MAX_TRACK_URI_LENGTH
from jetstream.flood import FloodLimits, task_bytes
from tests.support.jetstream_world import (
    TRACK_DID,
    cid,
    did,
    eventually,
    list_commit,
    loopback_config,
    pending_tasks,
    running_consumer,
    tid,
    track_uri,
)

pytestmark = pytest.mark.integration


async def test_a_frame_dated_in_the_future_is_handled_but_never_becomes_the_cursor(
    redis_client: aioredis.Redis, docket: Docket
) -> None:
    """a host whose clock runs a minute ahead: before, the cursor jumped to its
    stamp (clamped at now + 600 s), and a restart resumed past every edit made
    in between, so they were never delivered."""
    past = 1_763_900_000_000_000
    ahead = int((time.time() + 60) * 1_000_000)
    assert ahead > (time.time() + FUTURE_SKEW_SECONDS) * 1_000_000
    frames = [
        list_commit(
            owner=did(1),
            rkey="3m64hnzv42222",
            rev=tid(1),
            record_cid=cid("a"),
            tracks=[track_uri(1)],
            time_us=past,
        ),
        list_commit(
            owner=did(2),
            rkey="3m64hnzv42223",
            rev=tid(1),
            record_cid=cid("b"),
            tracks=[track_uri(2)],
            time_us=ahead,
        ),
        list_commit(
            owner=did(3),
            rkey="3m64hnzv42224",
            rev=tid(1),
            record_cid=cid("c"),
            tracks=[track_uri(3)],
            time_us=past + 1,
        ),
    ]
    async with (
        ReplayServer(frames) as replay,
        running_consumer(loopback_config((replay.url,)), redis_client, docket) as running,
    ):
        await eventually(lambda: len(running.enqueued) == 3)
        await eventually(lambda: running.consumer.cursor.done == past + 1)
    # all three changes are handled, the future one too ...
    assert sorted(e.playlist_uri for e in running.enqueued) == sorted(
        f"at://{did(n)}/fm.plyr.list/3m64hnzv4222{n + 1}" for n in (1, 2, 3)
    )
    # ... but the cursor stands at the newest credible time, and says why
    assert running.consumer.cursor.done == past + 1
    assert running.consumer.stats.future_frames == 1
    assert running.consumer.stats.last_event_time_us == past + 1


def long_track_uri(n: int, length: int) -> str:
    """a track URI of exactly `length` characters (a long record key), unique per n."""
    prefix = f"at://{TRACK_DID}/fm.plyr.track/"
    key = f"{n:06d}"
    return prefix + key + "a" * (length - len(prefix) - len(key))


async def redis_bytes(redis: aioredis.Redis) -> int:
    info = await redis.info("memory")
    return int(info["used_memory"])


async def test_a_track_uri_longer_than_a_real_one_rejects_the_record(
    redis_client: aioredis.Redis, docket: Docket
) -> None:
    """before: URIs of ~800 characters passed, 500 of them per task."""
    owner = did(7)
    frames = [
        list_commit(
            owner=owner,
            rkey="3m64hnzv42222",
            rev=tid(1),
            record_cid=cid("a"),
            tracks=[long_track_uri(n, MAX_TRACK_URI_LENGTH + 1) for n in range(500)],
            time_us=1_763_900_000_000_000,
        ),
        list_commit(
            owner=owner,
            rkey="3m64hnzv42223",
            rev=tid(1),
            record_cid=cid("b"),
            tracks=[long_track_uri(n, MAX_TRACK_URI_LENGTH) for n in range(500)],
            time_us=1_763_900_000_000_001,
        ),
    ]
    async with (
        ReplayServer(frames) as replay,
        running_consumer(loopback_config((replay.url,)), redis_client, docket) as running,
    ):
        await eventually(lambda: running.consumer.cursor.done == 1_763_900_000_000_001)
    assert running.consumer.stats.invalid["bad_track_uri"] == 1
    assert [e.playlist_uri for e in running.enqueued] == [
        f"at://{owner}/fm.plyr.list/3m64hnzv42223"
    ]


PER_DID_BYTES = 256 * 1024
TOTAL_BYTES = 512 * 1024


async def test_one_account_cannot_fill_redis_with_task_arguments(
    redis_client: aioredis.Redis, docket: Docket
) -> None:
    """one DID writes 40 playlists of 500 URIs of the longest allowed length: its
    pending tasks stop at its byte bound (the rest shed), a second flooder stops
    at the total bound, and a bystander's edit still gets its task. Redis grows by
    at most the documented formula (README, "Redis bytes"): 4 x the pending
    payload (<= the total bound; docket keeps the pickled arguments twice, in the
    parked task and in its run record) plus 4 KiB per task. before: 600
    playlists of 500 long URIs from one DID took Redis to 553 MB."""
    flooders = (did(1), did(2), did(3))
    bystander = did(9)
    t = 1_763_900_000_000_000
    frames = [
        list_commit(
            owner=owner,
            rkey=tid(1000 + n),
            rev=tid(1),
            record_cid=cid(f"{owner}{n}"),
            tracks=[long_track_uri(n * 500 + i, MAX_TRACK_URI_LENGTH) for i in range(500)],
            time_us=t + index * 40 + n,
        )
        for index, owner in enumerate(flooders)
        for n in range(40)
    ]
    frames.append(
        list_commit(
            owner=bystander,
            rkey=tid(1),
            rev=tid(1),
            record_cid=cid("mine"),
            tracks=[track_uri(1), track_uri(2)],
            time_us=t + 1000,
        )
    )
    flood = FloodLimits(
        burst=1000, max_pending_bytes=PER_DID_BYTES, max_total_pending_bytes=TOTAL_BYTES
    )
    before = await redis_bytes(redis_client)
    async with (
        ReplayServer(frames) as replay,
        # a long settle delay: nothing runs, everything admitted stays pending
        running_consumer(
            loopback_config((replay.url,), debounce_seconds=600, flood=flood),
            redis_client,
            docket,
        ) as running,
    ):
        await eventually(lambda: running.consumer.cursor.done == t + 1000)
        pending = await pending_tasks(docket)
        grown = await redis_bytes(redis_client) - before
    per_did = Counter(uri.split("/")[2] for uri in (e.playlist_uri for e in running.enqueued))
    one_task = task_bytes(
        "at://" + did(1) + "/fm.plyr.list/" + tid(1000),
        (cid("x"), tid(1), *[long_track_uri(0, MAX_TRACK_URI_LENGTH)] * 500),
    )
    assert per_did[did(1)] == PER_DID_BYTES // one_task  # its own bound
    assert per_did[did(2)] == PER_DID_BYTES // one_task  # the total now nearly spent
    assert per_did[did(3)] <= (TOTAL_BYTES - 2 * per_did[did(1)] * one_task) // one_task + 1
    assert per_did[bystander] == 1  # a small edit still fits
    assert running.consumer.stats.skipped["flood_shed"] == 120 - sum(
        per_did[owner] for owner in flooders
    )
    assert len(pending) == sum(per_did.values())
    payload = sum(
        task_bytes(e.playlist_uri, (e.cid or "", e.rev, *e.track_uris)) for e in running.enqueued
    )
    assert payload <= TOTAL_BYTES
    assert grown <= 4 * payload + 4096 * len(pending), (grown, payload)
