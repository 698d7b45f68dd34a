"""a track its owner deletes leaves every answer: the `fm.plyr.track` delete travels
the real path, replay server -> consumer (its markers) -> docket -> `withdraw_track`.

real redis-server, PostgreSQL from the schema, the API over ASGI, the websockets
client against the replay server; a delete in another repo withdraws nothing.
"""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from jetstream.replay import ReplayServer
from tests.support.api_world import URI_OF
from tests.support.jetstream_v2 import track_delete
from tests.support.jetstream_world import eventually, loopback_config, running_consumer, tid
from tests.support.withdrawal_world import (
    ARTIST_OF,
    WithdrawalWorld,
    ids,
    w,
    world,
)
from worker.tasks.markers import WorkerMarkers
from worker.tasks.withdrawals import withdrawal_handler

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

T0 = 1_763_700_000_000_000

__all__ = ["w", "world"]  # the shared fixtures


def _rkey(track_uri: str) -> str:
    return track_uri.rsplit("/", 1)[1]


async def test_a_track_deleted_on_the_firehose_leaves_the_answers(
    w: WithdrawalWorld, redis_client: aioredis.Redis
) -> None:
    first = ids(await w.answer())
    deleted, forged = first[0], first[1]
    owner = ARTIST_OF[deleted]
    stranger = w.world.alice.did  # a repo that does not hold `forged`
    frames = [
        track_delete(owner=stranger, rkey=_rkey(URI_OF[forged]), rev=tid(1), time_us=T0 + 1),
        track_delete(owner=owner, rkey=_rkey(URI_OF[deleted]), rev=tid(2), time_us=T0 + 2),
    ]
    markers = WorkerMarkers(withdrawal_handler(w.docket))
    async with (
        ReplayServer(frames) as replay,
        running_consumer(
            loopback_config((replay.url,)), redis_client, w.docket, markers=markers
        ) as running,
    ):
        await eventually(lambda: running.consumer.stats.frames == len(frames), what="frames")
        await eventually(lambda: markers.counts["track_deletes"] == 2, what="markers")
    # the consumer names a deleted record by the repo that deleted it, so a delete in
    # another repo names a record of that repo: no track plyr.fm knows
    await w.drain()
    assert w.worker.counts["withdraw:unknown_track"] == 1
    assert w.worker.counts["withdrawn:firehose"] == 1
    answer = ids(await w.answer())
    assert deleted not in answer
    assert forged in answer
