"""the API under cache faults: one fault (a read the client already retried, or one
that outlasted the API's bound on a busy machine) no longer takes the cache away;
Redis coming back with older data makes it check hits with the database."""

from __future__ import annotations

import fakeredis
import pytest

from engine.keys import WITHDRAWAL_ROUND_KEY, WITHDRAWN_GENERATION_KEY
from engine.withdrawal import RoundRecord
from jetstream.keys import JetstreamKeys
from jetstream.state_watch import Loss, StateWatch
from worker.api.breaker import CacheBreaker
from worker.api.withdrawn_view import WithdrawnView


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_it_opens_only_after_faults_in_a_row_and_closes_by_itself() -> None:
    clock = Clock()
    breaker = CacheBreaker(failures_to_open=3, open_seconds=2.0, clock=clock)
    assert not breaker.failed()
    assert not breaker.failed()
    assert breaker.closed  # two faults: the cache is still asked
    assert breaker.failed()  # the third opens it
    assert not breaker.closed
    assert not breaker.failed()  # already open: not "opened" again (logged once)
    clock.now += 2.0
    assert breaker.closed


def test_a_read_that_works_resets_the_count() -> None:
    breaker = CacheBreaker(failures_to_open=2, open_seconds=2.0, clock=Clock())
    for _ in range(10):
        assert not breaker.failed()
        breaker.succeeded()
    assert breaker.closed


def test_it_needs_at_least_one_fault_to_open() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        CacheBreaker(failures_to_open=0, open_seconds=1.0)


# --- Redis coming back with older data: the API's copy of the withdrawn set -------------


async def test_redis_going_back_in_time_makes_the_api_check_hits_with_the_database() -> None:
    """a partial loss (AOF everysec and a kill, a lagging replica promoted) leaves the
    round record there but may drop the last withdrawals: the consumer's marker count
    going back makes the copy untrusted until a round that began after it."""
    clock = Clock()
    clock.now = 1_000.0
    redis = fakeredis.FakeAsyncRedis()
    view = WithdrawnView(redis, stale_seconds=60.0, clock=clock, loss_key="epoch")
    assert view.keys == (WITHDRAWN_GENERATION_KEY, WITHDRAWAL_ROUND_KEY, "epoch")
    round_then = RoundRecord(started_at=995.0, seconds=0.1, checked=1, withdrawn=0).to_json()
    await view.landed([b"1", round_then, b"m:7"])
    assert view.covers()
    await view.landed([b"1", round_then, b"m:8"])
    assert view.covers()  # the count moved on: nothing lost
    clock.now += 1
    await view.landed([b"1", round_then, b"m:5"])  # the count went back
    assert view.counts["redis_losses"] == 1
    assert not view.covers()  # that round began before the loss
    round_after = RoundRecord(started_at=clock.now + 1, seconds=0.1, checked=1, withdrawn=0)
    clock.now += 2
    await view.landed([b"1", round_after.to_json(), b"m:6"])
    assert view.covers()
    await view.landed([b"1", round_after.to_json(), b"other:1"])  # another marker: all gone
    assert view.counts["redis_losses"] == 2
    assert not view.covers()


async def test_the_consumer_tells_a_partial_loss_from_a_total_one() -> None:
    redis = fakeredis.FakeAsyncRedis()
    keys = JetstreamKeys("fm.plyr.list")
    watch = StateWatch(redis, keys, ttl_seconds=60)
    assert not await watch.check()  # the first look writes the marker
    for _ in range(3):
        assert not await watch.check()
    assert watch.take_loss() is Loss.NONE
    marker, _, count = (await redis.get(keys.epoch)).decode().partition(":")
    assert int(count) == 4
    # AOF everysec and a kill: Redis comes back with the marker of two looks ago
    await redis.set(keys.epoch, f"{marker}:2", ex=60)
    assert await watch.check()
    assert watch.take_loss() is Loss.PARTIAL
    assert watch.take_loss() is Loss.NONE  # reported once
    assert not await watch.check()
    await redis.flushall()  # everything gone
    assert await watch.check()
    assert watch.take_loss() is Loss.TOTAL
    assert 0 < await redis.ttl(keys.epoch) <= 60
