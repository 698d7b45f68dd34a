"""a recompute's Redis round trips, counted against a real redis-server (issue 20:
the client's work per round trip was a third of the worker's CPU). the lock and
the first reads share one, one turbopuffer slot serves a whole run, and the fenced
cache write is one script that also gives that slot back and releases the lock:
three in all, where there were twenty-five."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from bench.loopback.servers import RedisServer
from engine.cache import CachedRecommendations, PlaylistState, cache_key, state_key
from engine.keys import STORE_SLOTS_KEY
from engine.types import Track
from engine.withdrawal import Source
from tests.support.counting import CountingStore
from tests.support.round_trips import command_calls, counting_client, round_trips
from tests.support.world import P1_ID, embedded_services, sample_store, story_commits
from worker.recs.services import installed
from worker.store.cache import RecommendationCache
from worker.store.lock import LeaseLost, playlist_lock
from worker.store.speculative import (
    SPECULATIVE_TTL_SECONDS,
    Speculated,
    SpeculativeAnswers,
    speculative_key,
)
from worker.store.store_budget import (
    BudgetedStore,
    SharedStoreBudget,
    StoreBudgetExhausted,
    give_back_with_the_write,
    one_slot_per_run,
)
from worker.store.withdrawn import (
    CARRIERS_COMPACT,
    WithdrawalIndex,
    carrier_keys,
    carrier_member,
    carrier_shard,
    carriers_key,
    carriers_shard_key,
    playlist_of,
)
from worker.tasks.playlist import recompute_playlist

pytestmark = pytest.mark.integration

COMMITS = story_commits()
OWNER = "did:plc:owner"


@pytest.fixture
async def counted(
    redis_client: aioredis.Redis, redis_server: RedisServer
) -> AsyncIterator[aioredis.Redis]:
    """a counting client of the session's redis-server (flushed by `redis_client`)."""
    client = counting_client(redis_server.url)
    await client.ping()  # its connection's set-up is not a recompute's
    yield client
    await client.aclose()


def budget(redis: aioredis.Redis, *, lease_seconds: float = 30.0) -> SharedStoreBudget:
    return SharedStoreBudget(
        redis,
        limit=3,
        reserved=1,
        lease_seconds=lease_seconds,
        wait_seconds=1.0,
        background_wait_seconds=0.2,
    )


def answer(*track_ids: int) -> CachedRecommendations:
    tracks = [Track(i, f"t{i}", f"h{i}", f"d{i}", None) for i in track_ids]
    return CachedRecommendations(tracks, True, "single", "f", "now")


def state(token: str, rev: str) -> PlaylistState:
    return PlaylistState(token, f"f-{token}", [1], [], rev, OWNER)


async def test_a_recompute_of_a_new_version_is_three_round_trips(counted: aioredis.Redis) -> None:
    store = CountingStore(sample_store())
    budgeted = BudgetedStore(store, budget(counted), foreground=False)
    async with embedded_services(store=budgeted, redis=counted) as services:
        with installed(services):

            async def recompute(commit: object) -> None:
                await recompute_playlist(
                    commit.playlist_uri,  # type: ignore[attr-defined]
                    commit.cid,  # type: ignore[attr-defined]
                    commit.rev,  # type: ignore[attr-defined]
                    commit.track_uris,  # type: ignore[attr-defined]
                    lease=30.0,
                    ingest_wait=1.0,
                    services=services,
                )

            await recompute(COMMITS[0])  # the server learns the scripts (EVAL, once)
            before = await command_calls(counted)
            store.calls.clear()
            with round_trips() as trips:
                await recompute(COMMITS[2])  # eight tracks: k-means, an id lookup and a query
            after = await command_calls(counted)
        slots_left = await counted.zcard(STORE_SLOTS_KEY)
        lock_left = await counted.exists(f"plyr:playlist-lock:{P1_ID}")
    assert services.counts["recompute:computed"] == 2
    assert store.calls == ["get_vectors", "query_many"]
    # the lock with the first reads; the slot taken; the write, which gives the slot
    # back and releases the lock in its own script
    assert trips.count == 3
    assert after["evalsha"] - before["evalsha"] == 2  # take, write: one script each
    assert after["zrem"] - before["zrem"] == 1  # the run's one slot, given back once (in the write)
    assert after.get("del", 0) - before.get("del", 0) == 1  # the lock, by the write
    assert (slots_left, lock_left) == (0, 0)
    # no compare-and-set rounds left
    assert after.get("watch", 0) == before.get("watch", 0)
    assert after.get("multi", 0) == before.get("multi", 0)


async def test_a_write_that_loses_its_lease_still_gives_the_slot_back_and_keeps_the_lock(
    counted: aioredis.Redis,
) -> None:
    shared = budget(counted)
    store = BudgetedStore(sample_store(), shared, foreground=False)
    cache = RecommendationCache(counted)
    async with (
        playlist_lock(counted, P1_ID, lease_seconds=30.0, ends_with_write=True) as lease,
        give_back_with_the_write(),
    ):
        async with one_slot_per_run():
            await store.get_vectors([1, 2])
        assert await counted.zcard(STORE_SLOTS_KEY) == 1  # held until the write
        await counted.set(lease.key, "another run's token", px=30_000)  # lapsed, retaken
        with pytest.raises(LeaseLost):
            await cache.put(P1_ID, "cid-1", answer(1), state("cid-1", "3m64ho4aaaa22"), lease=lease)
        assert await counted.zcard(STORE_SLOTS_KEY) == 0  # the script gave it back anyway
        assert not lease.end.released
    assert await counted.get(lease.key) == b"another run's token"  # never ours to release
    assert not await counted.exists(cache_key(P1_ID, "cid-1"))


async def test_a_run_that_writes_nothing_gives_its_slot_back_and_releases_at_the_end(
    counted: aioredis.Redis,
) -> None:
    shared = budget(counted)
    store = BudgetedStore(sample_store(), shared, foreground=False)
    async with (
        playlist_lock(counted, P1_ID, lease_seconds=30.0, ends_with_write=True) as lease,
        give_back_with_the_write(),
    ):
        async with one_slot_per_run():
            await store.get_vectors([1, 2])
        assert await counted.zcard(STORE_SLOTS_KEY) == 1
    assert await counted.zcard(STORE_SLOTS_KEY) == 0
    assert not await counted.exists(lease.key)


async def test_a_write_under_a_lease_that_does_not_end_with_it_keeps_the_lock(
    counted: aioredis.Redis,
) -> None:
    cache = RecommendationCache(counted)
    async with playlist_lock(counted, P1_ID, lease_seconds=30.0) as lease:
        await cache.put(P1_ID, "cid-1", answer(1), state("cid-1", "3m64ho4aaaa22"), lease=lease)
        assert await counted.get(lease.key) == lease.token.encode()  # still held
        await cache.put(P1_ID, "cid-2", answer(2), state("cid-2", "3m64ho4bbbb22"), lease=lease)
    assert not await counted.exists(lease.key)
    assert await counted.exists(cache_key(P1_ID, "cid-2"))


async def test_the_cache_write_is_one_round_trip_and_fenced(counted: aioredis.Redis) -> None:
    cache = RecommendationCache(counted)
    async with playlist_lock(counted, P1_ID, lease_seconds=30.0) as lease:
        await cache.put(P1_ID, "cid-1", answer(1), state("cid-1", "3m64ho4aaaa22"), lease=lease)
        with round_trips() as trips:
            written = await cache.put(
                P1_ID, "cid-2", answer(2), state("cid-2", "3m64ho4bbbb22"), lease=lease
            )
        assert trips.count == 1
        assert written.state_written
        # the lease lapsed and another run holds the lock now: nothing is written
        await counted.set(lease.key, "another-run", px=30_000)
        with round_trips() as trips, pytest.raises(LeaseLost):
            await cache.put(P1_ID, "cid-3", answer(3), state("cid-3", "3m64ho4cccc22"), lease=lease)
        assert trips.count == 1
        # and with no lock at all (expired, or Redis lost it)
        await counted.delete(lease.key)
        with pytest.raises(LeaseLost):
            await cache.put(P1_ID, "cid-3", answer(3), None, lease=lease)
    assert not await counted.exists(cache_key(P1_ID, "cid-3"))
    assert await cache.get_state(P1_ID) == state("cid-2", "3m64ho4bbbb22")
    assert cache.counts["lease_lost"] == 2


async def test_revisions_compare_as_python_compares_them(counted: aioredis.Redis) -> None:
    """the script's rev check: byte order (never the server's locale), an empty or
    unreadable stored state is never newer, an older rev keeps the newer state."""
    cache = RecommendationCache(counted)
    newer = state("cid-b", "3m64ho4bbbb22")
    assert (await cache.put(P1_ID, "cid-b", answer(1), newer)).state_written
    older = state("cid-a", "3m64ho4aaaa22")
    assert not (await cache.put(P1_ID, "cid-a", answer(1), older)).state_written
    assert not (
        await cache.put(P1_ID, "cid-a", answer(1), state("cid-a", "3m64ho4bbbb2"))
    ).state_written  # a prefix sorts first
    assert await cache.get_state(P1_ID) == newer
    digit_after = state("cid-c", "3m64ho4bbbb23")  # '3' > '2' bytewise
    assert (await cache.put(P1_ID, "cid-c", answer(1), digit_after)).state_written
    for stored in (b"[]", b'{"rev": null}', b'{"rev": ""}', b"{broken"):
        await counted.set(state_key(P1_ID), stored, ex=60)
        older = state("cid-0", "2222222222222")
        assert (await cache.put(P1_ID, "cid-0", answer(1), older)).state_written, stored
    # a write without a rev never loses to the stored one either
    assert (await cache.put(P1_ID, "cid-x", answer(1), state("cid-x", ""))).state_written


async def test_the_rev_rule_reads_both_stored_forms_of_a_state(counted: aioredis.Redis) -> None:
    """a state is stored packed (`engine.state_codec`), its rev in a header the script
    reads; one in the JSON form (a previous release's writer, mid-deploy) still counts."""
    cache = RecommendationCache(counted)
    newer, older = state("cid-b", "3m64ho4bbbb22"), state("cid-a", "3m64ho4aaaa22")
    assert (await cache.put(P1_ID, "cid-b", answer(1), newer)).state_written
    stored = await counted.get(state_key(P1_ID))
    assert stored is not None
    assert stored.startswith(b"z1 3m64ho4bbbb22\n")
    assert not (await cache.put(P1_ID, "cid-a", answer(1), older)).state_written
    # the previous release's JSON: read, and its rev still refuses an older write
    await counted.set(state_key(P1_ID), newer.to_json(), ex=60)
    assert await cache.get_state(P1_ID) == newer
    assert not (await cache.put(P1_ID, "cid-a", answer(1), older)).state_written
    # and a newer packed state replaces an older JSON one
    await counted.set(state_key(P1_ID), older.to_json(), ex=60)
    assert (await cache.put(P1_ID, "cid-b", answer(1), newer)).state_written
    assert await cache.get_state(P1_ID) == newer
    # a packed state without the end of its header: unreadable, so never newer
    await counted.set(state_key(P1_ID), b"z1 3m64ho4zzzz22", ex=60)
    assert await cache.get_state(P1_ID) is None
    assert cache.counts["corrupt_states"] == 1
    assert (await cache.put(P1_ID, "cid-a", answer(1), older)).state_written
    assert await cache.get_state(P1_ID) == older


def test_a_uuid_carrier_is_its_16_bytes_and_any_other_id_its_text() -> None:
    member = carrier_member(P1_ID)
    assert len(member) == 17
    assert playlist_of(member) == P1_ID
    # not a UUID as plyr.fm writes them: kept as written, never taken for a packed one
    for other in ("p-1", "0123456789abcdef", P1_ID.upper(), P1_ID.replace("-", "")):
        assert carrier_member(other) == other.encode()
        assert playlist_of(carrier_member(other)) == other
    assert playlist_of(P1_ID) == P1_ID  # a client that decodes replies


async def test_the_index_keeps_packed_carriers_with_whole_second_expiries(
    counted: aioredis.Redis,
) -> None:
    """issue 20: the carriers sets were ~60 B a member (the id's 36 characters, a
    fractional score as text); a member from an earlier release is still read."""
    cache = RecommendationCache(counted)
    await cache.put(P1_ID, "cid-1", answer(1, 2), None)
    members = await counted.zrange(carriers_key(1), 0, -1, withscores=True)
    assert [(member, score.is_integer()) for member, score in members] == [
        (carrier_member(P1_ID), True)
    ]
    live = await counted.zrange("plyr:withdrawal-live", 0, -1, withscores=True)
    assert all(score.is_integer() for _, score in live)
    earlier = "33333333-3333-4333-8333-333333333333"
    await counted.zadd(carriers_key(1), {earlier: members[0][1]})
    assert await WithdrawalIndex(counted).carriers([1, 2]) == {P1_ID, earlier}


async def test_a_popular_track_s_carriers_overflow_into_shards_that_stay_compact(
    counted: aioredis.Redis,
) -> None:
    """issue 20: one sorted set per track left Redis's compact encoding past 128
    carriers (~120-140 B a member); the overflow goes to the playlist's shard."""
    cache = RecommendationCache(counted)
    playlists = [str(uuid.UUID(int=n + 1)) for n in range(CARRIERS_COMPACT + 40)]
    for playlist_id in playlists:
        await cache.put(playlist_id, "cid-1", answer(1), None)
    assert await counted.zcard(carriers_key(1)) == CARRIERS_COMPACT
    overflow = playlists[CARRIERS_COMPACT:]
    for playlist_id in overflow:
        member = carrier_member(playlist_id)
        shard = carriers_shard_key(1, carrier_shard(member))
        assert await counted.zscore(shard, member) is not None
    encodings = {await counted.object("encoding", key) for key in carrier_keys(1)}
    assert encodings - {None} == {b"listpack"}, encodings  # every set compact
    # a playlist already in the first set stays there as it is written again
    await cache.put(playlists[0], "cid-2", answer(1), None)
    assert await counted.zcard(carriers_key(1)) == CARRIERS_COMPACT
    assert sum([await counted.zcard(key) for key in carrier_keys(1)]) == len(playlists)
    # the round finds every carrier, in the first set and in the shards
    assert await WithdrawalIndex(counted).carriers([1]) == set(playlists)
    # once the first set's members expire, new carriers go to it again
    await counted.zremrangebyscore(carriers_key(1), "-inf", "+inf")
    await cache.put(overflow[0], "cid-3", answer(1), None)
    assert await counted.zscore(carriers_key(1), carrier_member(overflow[0])) is not None


async def test_a_track_withdrawn_before_the_write_is_left_out_by_it(
    counted: aioredis.Redis,
) -> None:
    cache = RecommendationCache(counted)
    index = WithdrawalIndex(counted)
    await index.mark([2], Source.CATALOG)
    await cache.put(P1_ID, "cid-0", answer(9), None)  # the script is known
    with round_trips() as trips:
        written = await cache.put(P1_ID, "cid-1", answer(1, 2, 3), None)
    # the script names the withdrawn track and writes nothing; the screened answer goes next
    assert trips.count == 2
    assert [track.id for track in written.value.tracks] == [1, 3]
    stored = await cache.get(P1_ID, "cid-1")
    assert stored is not None
    assert [track.id for track in stored.tracks] == [1, 3]
    assert cache.counts["screened_at_write"] == 1
    # indexed by what it carries: the withdrawn track's carriers do not list it
    assert await index.carriers([1]) == {P1_ID}
    assert await index.carriers([2]) == set()
    assert await counted.ttl(carriers_key(1)) > 0


async def test_a_speculative_answer_is_one_round_trip_screened_in_its_script(
    counted: aioredis.Redis,
) -> None:
    speculative = SpeculativeAnswers(counted)
    uris = ["at://did:plc:a/fm.plyr.track/1", "at://did:plc:a/fm.plyr.track/2"]
    await speculative.put(P1_ID, ["warm"], Speculated((1,), answer(9)))  # the script is known
    with round_trips() as trips:
        await speculative.put(P1_ID, uris, Speculated((1, 2), answer(3, 4, 5)))
    assert trips.count == 1
    kept = await speculative.get(P1_ID, uris)
    assert kept is not None
    assert [track.id for track in kept.value.tracks] == [3, 4, 5]
    # a track withdrawn before the write: named by the script, left out, written again
    await WithdrawalIndex(counted).mark([4], Source.CATALOG)
    with round_trips() as trips:
        await speculative.put(P1_ID, uris, Speculated((1, 2), answer(3, 4, 5)))
    assert trips.count == 2
    kept = await speculative.get(P1_ID, uris)
    assert kept is not None
    assert [track.id for track in kept.value.tracks] == [3, 5]
    assert kept.track_ids == (1, 2)
    assert 0 < await counted.ttl(speculative_key(P1_ID, uris)) <= SPECULATIVE_TTL_SECONDS


async def test_one_run_keeps_one_slot_and_never_lends_it_twice(counted: aioredis.Redis) -> None:
    slots = budget(counted)  # the workers' share: 2 of 3
    async with one_slot_per_run():
        async with slots.slot(foreground=False):
            assert await slots.in_use() == 1
        assert await slots.in_use() == 1  # kept for the run's next request
        async with slots.slot(foreground=False):
            assert await slots.in_use() == 1  # the same one
            # a request of the run made while its slot is busy takes its own
            async with slots.slot(foreground=False):
                assert await slots.in_use() == 2
                # and the share is still enforced: no third at once
                with pytest.raises(StoreBudgetExhausted):
                    async with slots.slot(foreground=False):
                        pass
            assert await slots.in_use() == 1
    assert await slots.in_use() == 0  # given back as the run ends


async def test_a_slot_kept_past_half_its_lease_is_taken_afresh(counted: aioredis.Redis) -> None:
    slots = budget(counted, lease_seconds=0.2)
    async with one_slot_per_run():
        async with slots.slot(foreground=False):
            first = await counted.zrange(STORE_SLOTS_KEY, 0, -1)
        await asyncio.sleep(0.15)  # past half of 0.2 s
        async with slots.slot(foreground=False):
            second = await counted.zrange(STORE_SLOTS_KEY, 0, -1)
    assert len(first) == len(second) == 1
    assert first != second
    assert await slots.in_use() == 0


async def test_a_lease_is_renewed_by_its_holder_and_nobody_else(counted: aioredis.Redis) -> None:
    async with playlist_lock(counted, P1_ID, lease_seconds=0.3) as lease:
        await asyncio.sleep(0.5)  # longer than the lease: renewed while held
        assert await counted.get(lease.key) == lease.token.encode()
        # taken over (the lease lapsed in a long pause): its renewals leave it alone
        await counted.set(lease.key, "another-run", px=300)
        await asyncio.sleep(0.45)
        assert not await counted.exists(lease.key)  # expired: nobody extended it
        await counted.set(lease.key, "another-run", px=30_000)
    assert await counted.get(lease.key) == b"another-run"  # the release left it alone
