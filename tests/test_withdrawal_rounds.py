"""the withdrawal check as the worker runs it (docket's Perpetual, one chain whatever
the workers), through a Redis outage, and its pure decisions (engine.withdrawal)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
from docket import Docket

from bench.loopback.servers import PostgresServer, RedisServer
from engine.cache import CachedRecommendations
from engine.types import Track
from engine.withdrawal import RoundRecord, decide, round_covers, screened
from tests.support.api_world import PUBLIC_ID, World
from tests.support.withdrawal_world import (
    ids,
    withdrawal_world,  # fixtures
    world,
)
from worker.api.app import SOURCE_HEADER
from worker.processes.worker import build_worker
from worker.recs.services import installed
from worker.store.withdrawn import WithdrawalIndex

pytestmark = pytest.mark.timeout(120)

TAKEDOWN = "UPDATE tracks SET moderation_override = 'takedown' WHERE id = $1"

__all__ = ["world"]  # the shared fixtures


async def test_the_worker_keeps_the_check_round_scheduled(
    world: World, redis_client: aioredis.Redis, postgres_dsn: str, docket: Docket
) -> None:
    async with withdrawal_world(world, redis_client, postgres_dsn, docket) as w:
        target = ids(await w.answer())[0]
        await w.sql(TAKEDOWN, target)
        worker = build_worker(docket, concurrency=2, automatic=True, reconcile=False)
        worker.minimum_check_interval = timedelta(milliseconds=10)
        worker.scheduling_resolution = timedelta(milliseconds=10)
        with installed(w.worker):
            async with worker:
                await worker.run_at_most({"check_withdrawals": 2, "refill:" + PUBLIC_ID: 1})
        assert w.worker.counts["withdrawal_round:done"] == 2
        assert w.worker.counts["withdrawn:catalog"] == 1
        assert target not in ids(await w.answer())
        metrics = (await w.api.client.get("/metrics")).text
        assert 'plyr_recs_withdrawals_total{kind="withdrawn:catalog"} 1.0' in metrics
        assert 'plyr_recs_withdrawals_total{kind="rounds"} 2.0' in metrics
        assert "plyr_recs_withdrawal_round_seconds" in metrics


async def test_a_withdrawal_during_a_redis_outage_is_never_served(
    world: World, postgres_dsn: str, docket: Docket, tmp_path: Path
) -> None:
    # a Redis of its own that keeps its data across a restart (the cache survives)
    durable = RedisServer(tmp_path / "redis", appendonly=True)
    durable.start()
    redis = aioredis.Redis.from_url(durable.url)
    try:
        async with withdrawal_world(world, redis, postgres_dsn, docket) as w:
            target = ids(await w.answer())[0]
            assert (await w.round()).withdrawn == frozenset()
            assert target in ids(await w.answer())  # a hit, covered by that round

            durable.stop()
            await w.sql(TAKEDOWN, target)
            during = await w.answer()  # fresh computes apply eligibility themselves
            assert during.headers[SOURCE_HEADER] == "computed_uncached"
            assert target not in ids(during)
            durable.start()

            # Redis is back with the old answer, no round has seen the takedown: every
            # answer until one has is checked with the database, never served as cached
            sources: list[str] = []
            while "hit" not in sources:  # the client reconnects within a request or two
                assert len(sources) < 20, sources
                response = await w.answer()
                sources.append(response.headers[SOURCE_HEADER])
                assert target not in ids(response)
            assert (await w.round()).withdrawn == {target}
            assert target not in ids(await w.answer())
    finally:
        await redis.aclose()
        durable.stop()


async def test_with_the_database_down_rounds_fail_quietly_and_publish_nothing(
    world: World,
    redis_client: aioredis.Redis,
    postgres_dsn: str,
    docket: Docket,
    postgres_server: PostgresServer,
) -> None:
    async with withdrawal_world(world, redis_client, postgres_dsn, docket) as w:
        await w.answer()  # a live answer: the round has tracks to ask about
        admin = await asyncpg.connect(postgres_server.dsn())
        try:
            await admin.execute(f'DROP DATABASE "{postgres_dsn.rsplit("/", 1)[1]}" WITH (FORCE)')
        finally:
            await admin.close()
        worker = build_worker(docket, concurrency=2, automatic=True, reconcile=False)
        worker.minimum_check_interval = timedelta(milliseconds=10)
        worker.scheduling_resolution = timedelta(milliseconds=10)
        with installed(w.worker):
            async with worker:
                await worker.run_at_most({"check_withdrawals": 2})
        assert w.worker.counts["withdrawal_round:failed"] == 2
        assert w.worker.counts["withdrawal_round:done"] == 0
        # no record: the API stops trusting its copy and checks hits itself
        assert await WithdrawalIndex(redis_client).last_round() is None


# --- the pure part ------------------------------------------------------------------


def test_decide_marks_the_newly_ineligible_and_lifts_only_the_rounds_own_marks() -> None:
    decision = decide(
        live={1, 2, 3, 4, 5},
        eligible={1, 2, 6, 7},
        withdrawn={3, 6, 7},  # 3 still ineligible; 6 (a round's) and 7 (a delete's) eligible
        firehose={7},
    )
    assert decision.withdrawn == {4, 5}
    assert decision.reinstated == {6}


def test_screened_keeps_order_and_returns_the_same_answer_when_nothing_goes() -> None:
    tracks = [Track(n, f"t{n}", "h", "d", None) for n in range(1, 6)]
    value = CachedRecommendations(tracks, True)
    assert screened(value, {9}) is value
    assert screened(value, set()) is value
    assert [track.id for track in screened(value, {2, 4}).tracks] == [1, 3, 5]


def test_a_round_covers_only_recent_rounds_begun_after_redis_came_back() -> None:
    record = RoundRecord(started_at=100.0, seconds=0.01, checked=5, withdrawn=1)
    assert round_covers(record, now=102.0, stale_seconds=3.0)
    assert not round_covers(record, now=104.0, stale_seconds=3.0)
    assert not round_covers(record, now=101.0, stale_seconds=3.0, not_before=100.5)
    assert not round_covers(None, now=100.0, stale_seconds=3.0)


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"started_at": "x", "seconds": 0, "checked": 0, "withdrawn": 0}',
        b'{"started_at": NaN, "seconds": 0, "checked": 0, "withdrawn": 0}',
        b'{"started_at": 1, "seconds": 0, "checked": -1, "withdrawn": 0}',
        b'{"started_at": 1, "seconds": 0, "checked": 0, "withdrawn": true}',
        b'{"started_at": 1, "seconds": 0, "checked": 0, "withdrawn": 0, "totals": 3}',
        b"{" + b" " * 5000 + b"}",
    ],
)
def test_a_round_record_that_is_not_one_is_no_round(raw: bytes) -> None:
    assert RoundRecord.from_json(raw) is None


def test_a_round_record_round_trips_and_drops_junk_counters() -> None:
    record = RoundRecord(1.5, 0.25, 10, 2, {"rounds": 3})
    assert RoundRecord.from_json(record.to_json()) == record
    junk = b'{"started_at": 1, "seconds": 0, "checked": 0, "withdrawn": 0, "totals": {"a": -1}}'
    parsed = RoundRecord.from_json(junk)
    assert parsed is not None
    assert parsed.totals == {}
