"""track deletes through the per-DID flood control (issue 23, finding 7): the real
websockets client against the replay server, 5,000 `fm.plyr.track` deletes from one
account and a legitimate edit after them, the consumer's real marker sink scheduling
`withdraw_track` into docket on the real redis-server (no worker runs: what docket
holds, and when each task falls due, is read back with docket's own snapshot).

before: each delete was one `docket.add` round trip, due at once: 5,000 withdrawals
ahead of the edit's recompute in the workers' queue (the edit waited 126 s)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
import redis.asyncio as aioredis
from docket import Docket

from jetstream import JetstreamConsumer, ReplayServer
from jetstream.contract import recompute_key, withdraw_key
from jetstream.flood import FloodLimits
from tests.support.jetstream_v2 import track_delete
from tests.support.jetstream_world import (
    cid,
    did,
    eventually,
    fast_backoff,
    list_commit,
    loopback_config,
    tid,
    track_uri,
)
from worker.tasks.markers import WorkerMarkers
from worker.tasks.playlist import PLAYLIST_TASKS
from worker.tasks.withdrawals import withdrawal_handler

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

NOW = 1_800_000_000.0
SETTLE = 2.0
T0_US = 1_763_700_000_000_000
LIMITS = FloodLimits(changes_per_minute=60, burst=30, max_pending=600)
DELETES = 5_000
FLOODER, EDITOR = did(7), did(8)


def _rkey(uri: str) -> str:
    return uri.rsplit("/", 1)[1]


async def test_a_flood_of_track_deletes_is_paced_and_a_legit_edit_keeps_its_settle_delay(
    redis_client: aioredis.Redis, docket: Docket
) -> None:
    frames = [
        track_delete(owner=FLOODER, rkey=_rkey(track_uri(n)), rev=tid(n + 1), time_us=T0_US + n)
        for n in range(DELETES)
    ]
    playlist = f"at://{EDITOR}/fm.plyr.list/{tid(1)}"
    frames.append(
        list_commit(
            owner=EDITOR,
            rkey=tid(1),
            rev=tid(1),
            record_cid=cid("legit"),
            tracks=[track_uri(1)],
            time_us=T0_US + DELETES,
        )
    )
    markers = WorkerMarkers(withdrawal_handler(docket))
    config = loopback_config((), debounce_seconds=SETTLE, flood=LIMITS)
    async with ReplayServer(frames) as replay:
        consumer = JetstreamConsumer(
            config=dataclasses.replace(config, hosts=(replay.url,)),
            redis=redis_client,
            docket=docket,
            tasks=PLAYLIST_TASKS,
            clock=lambda: NOW,
            backoff=fast_backoff(),
            markers=markers,
        )
        stop = asyncio.Event()
        running = asyncio.create_task(consumer.run(stop))
        try:
            await eventually(lambda: consumer.stats.frames == len(frames), within=120)
        finally:
            stop.set()
            await asyncio.wait_for(running, 10)

    snapshot = await docket.snapshot()
    whens = {execution.key: execution.when.timestamp() for execution in snapshot.future}
    recompute_when = whens.pop(recompute_key(playlist))
    assert recompute_when == NOW + SETTLE  # the edit keeps its settle delay
    withdrawals = sorted(whens.values())
    # at most the cap pending (the burst, due at once, stops counting as pending on
    # this clock that stands still); the rest shed, and counted
    assert len(withdrawals) <= LIMITS.max_pending + LIMITS.burst
    assert consumer.stats.skipped["flood_shed"] == DELETES - len(withdrawals)
    # the burst at once, then one a second: the edit's recompute is behind at most the
    # burst and the two seconds of its settle delay, not 5,000 withdrawals
    ahead = [when for when in withdrawals if when <= recompute_when]
    assert len(ahead) <= LIMITS.burst + SETTLE / LIMITS.interval
    assert withdrawals == [NOW] * LIMITS.burst + [
        NOW + k * LIMITS.interval for k in range(1, len(withdrawals) - LIMITS.burst + 1)
    ]
    first = f"at://{FLOODER}/fm.plyr.track/{_rkey(track_uri(0))}"  # named by its repo
    assert whens[withdraw_key(first)] == NOW
    assert markers.counts["track_deletes"] == len(withdrawals)
