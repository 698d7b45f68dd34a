"""the rev/CID guard: the pure rule, and its state in a real Redis."""

from __future__ import annotations

import redis.asyncio as aioredis

from jetstream import ListCommit, ListDelete, SkipReason
from jetstream.cursor import Cursor, CursorStore, rewound
from jetstream.guard import GuardState, RevGuard, judge
from jetstream.keys import JetstreamKeys
from tests.support.jetstream_world import cid, tid

URI = "at://did:plc:6eougfhpazchdzjqplapphgj/fm.plyr.list/3m64hnzv42222"
KEYS = JetstreamKeys("fm.plyr.list")


def commit(rev: int, record: str) -> ListCommit:
    return ListCommit(
        1, "did:plc:6eougfhpazchdzjqplapphgj", "3m64hnzv42222", tid(rev), cid(record), URI, ()
    )


def delete(rev: int) -> ListDelete:
    return ListDelete(1, "did:plc:6eougfhpazchdzjqplapphgj", "3m64hnzv42222", tid(rev), URI)


def test_tids_sort_as_strings_like_their_numbers() -> None:
    assert tid(9) < tid(10) < tid(2**40)


def test_a_new_playlist_is_accepted() -> None:
    assert judge(None, commit(5, "a")) is None


def test_newer_revisions_are_accepted_older_and_equal_ones_are_not() -> None:
    known = GuardState.of(commit(5, "a"))
    assert judge(known, commit(6, "b")) is None
    assert judge(known, commit(5, "a")) == SkipReason.DUPLICATE
    assert judge(known, commit(4, "z")) == SkipReason.STALE_REV


def test_a_newer_rev_with_the_same_record_costs_nothing() -> None:
    assert judge(GuardState.of(commit(5, "a")), commit(6, "a")) == SkipReason.SAME_CID


def test_a_delete_fences_off_stale_updates_but_not_a_re_creation() -> None:
    deleted = GuardState.of(delete(7))
    assert deleted.cid is None
    assert judge(deleted, commit(6, "old")) == SkipReason.STALE_REV
    assert judge(deleted, delete(7)) == SkipReason.DUPLICATE
    assert judge(deleted, commit(8, "again")) is None


def test_state_round_trips_through_its_encoding() -> None:
    for state in (GuardState.of(commit(5, "a")), GuardState.of(delete(9))):
        assert GuardState.decode(state.encode()) == state
        assert GuardState.decode(state.encode().decode()) == state
    assert GuardState.decode(b"\xff garbage") is None
    assert GuardState.decode(b"not-a-tid bafy") is None


async def test_the_guard_remembers_states_with_a_ttl(redis_client: aioredis.Redis) -> None:
    guard = RevGuard(redis_client, KEYS, ttl_seconds=3600)
    assert await guard.load([URI]) == {}
    state = GuardState.of(commit(5, "a"))
    await guard.record({URI: state})
    assert await guard.load([URI, URI + "x"]) == {URI: state}
    ttl = await redis_client.ttl(KEYS.rev(URI))
    assert 3500 < ttl <= 3600


async def test_a_corrupted_guard_value_reads_as_unknown(redis_client: aioredis.Redis) -> None:
    await redis_client.set(KEYS.rev(URI), b"\x00\x01", ex=60)
    assert await RevGuard(redis_client, KEYS, ttl_seconds=60).load([URI]) == {}


async def test_the_cursor_flushes_only_when_it_moved_and_never_goes_back(
    redis_client: aioredis.Redis,
) -> None:
    store = CursorStore(redis_client, KEYS)
    cursor = Cursor(store)
    assert await cursor.resume_position() is None
    cursor.advance(2_000_000)
    cursor.advance(1_000_000)  # a replayed older event
    assert cursor.done == 2_000_000
    assert await cursor.flush() is True
    assert await cursor.flush() is False
    assert await store.load() == 2_000_000
    assert await redis_client.ttl(KEYS.cursor) == -1  # no TTL, on purpose (see keys.py)

    fresh = Cursor(store)
    assert await fresh.resume_position() == 2_000_000
    assert rewound(2_000_000, 1.5) == 500_000
    assert rewound(2_000_000, 5) == 0


async def test_a_garbage_stored_cursor_is_ignored(redis_client: aioredis.Redis) -> None:
    await redis_client.set(KEYS.cursor, b"yesterday")
    assert await CursorStore(redis_client, KEYS).load() is None
    await redis_client.set(KEYS.cursor, b"-5")
    assert await CursorStore(redis_client, KEYS).load() is None
