"""what one host or one account can do to the stream's shared state (issue 16):
a frame dated in the future must not move the saved cursor, and task arguments
are bounded so one account cannot fill Redis."""

from __future__ import annotations

import time

import pytest
import redis.asyncio as aioredis
from docket import Docket

from jetstream import ReplayServer
from jetstream.batch import FUTURE_SKEW_SECONDS
from tests.support.jetstream_world import (
    cid,
    did,
    eventually,
    list_commit,
    loopback_config,
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
