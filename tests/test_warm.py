"""`plyr-recs warm`, `plyr-recs status`'s reconcile table, the API's view records and
its reconcile metrics, on real parts."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from rich.console import Console

from bench.loopback.servers import RedisServer
from tests.support.api_world import PUBLIC_ID, World, built_world, internal, running_api
from tests.support.reconcile_world import ALICE, BOB, ReconcileWorld, reconcile_world, running_parts
from tests.support.world import drain
from worker.processes.warm import reconcile_status, render_reconcile_status, warm
from worker.store.activity import activity_key
from worker.tasks.reconcile import reconcile_once

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def world(postgres_dsn: str, redis_server: RedisServer) -> AsyncIterator[ReconcileWorld]:
    async with reconcile_world(postgres_dsn, redis_server) as built:
        await built.add("alice0", ALICE, [1, 5, 9])
        await built.add("bob0", BOB, [2, 6])
        await built.add("gone", BOB, [3], on_pds=False)
        await built.add("secret", ALICE, [10, 14], private=True)
        yield built


def console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=120, force_terminal=False), out


async def test_warm_enqueues_what_is_cold_and_then_finds_it_warm(
    world: ReconcileWorld, redis_client: aioredis.Redis
) -> None:
    settings = world.settings()
    screen, out = console()
    assert await warm(settings, screen, dry_run=True) == 0  # says, enqueues nothing
    assert "to enqueue: not cached" in out.getvalue()
    assert "enqueued:" not in out.getvalue()
    screen, out = console()
    assert await warm(settings, screen, dry_run=False) == 0
    text = out.getvalue()
    assert "enqueued: not cached" in text
    assert "deleted from the owner's PDS" in text
    assert "enqueued: private" in text
    async with running_parts(settings) as (services, docket):
        await drain(docket, services)
    screen, out = console()
    assert await warm(settings, screen, dry_run=True) == 0
    rows = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in out.getvalue().splitlines()
        if line.count("│") == 3
    }
    # the deleted one is known deleted (not read again); a dry run says "to enqueue",
    # not "enqueued" (it enqueues nothing)
    assert rows == {
        "listed": "4",
        "already warm": "3",
        "deleted from the owner's PDS (known: not read again)": "1",
    }
    assert "enqueued" not in out.getvalue()


async def test_status_shows_the_loops_last_pass_and_the_missed_total(
    world: ReconcileWorld, redis_client: aioredis.Redis
) -> None:
    settings = world.settings()
    last, totals = await reconcile_status(settings)
    assert last is None
    assert totals["passes"] == 0
    async with running_parts(settings) as (services, docket):
        await reconcile_once(services, docket, run="loop")
    last, totals = await reconcile_status(settings)
    assert last is not None
    assert last.listed == 4
    assert totals["passes"] == 1
    screen, out = console()
    screen.print(render_reconcile_status(last, totals))
    assert "missed_by_firehose" in out.getvalue()
    assert "listed" in out.getvalue()


@pytest.fixture
async def api_world() -> AsyncIterator[World]:
    async with built_world() as built:
        yield built


async def test_a_view_through_the_api_marks_the_playlist_active(
    api_world: World, redis_client: aioredis.Redis
) -> None:
    from tests.support.world import sample_store

    async with running_api(api_world, redis_client, store=sample_store()) as api:
        answer = await api.get(PUBLIC_ID, internal(api_world.alice.did))
        assert answer.status_code == 200
        await api.app.state.api.answers.activity.aclose()  # the background write, done
        assert await redis_client.exists(activity_key(PUBLIC_ID))
        metrics = await api.client.get("/metrics")
    assert "plyr_recs_reconcile_missed_by_firehose" in metrics.text
