"""the recompute and forget tasks, run by a real docket worker on `memory://`
against the embedded store and catalog and a fakeredis cache."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence

import pytest
import redis.asyncio as aioredis
from docket import Docket

from engine.cache import (
    CACHE_TTL_SECONDS,
    CachedRecommendations,
    PlaylistState,
    cache_key,
    state_key,
    tokens_key,
    versions_key,
)
from engine.ports import CatalogUnavailableError, PermanentStoreError, TransientStoreError
from engine.types import Candidate, Vector
from jetstream.contract import forget_key, recompute_key
from tests.support.counting import CountingStore
from tests.support.world import (
    NOT_OURS_URI,
    P1_ID,
    P1_URI,
    P2_ID,
    P2_URI,
    FlakyStore,
    HeldStore,
    cached,
    drain,
    embedded_services,
    enqueue,
    sample_store,
    story_commits,
)
from worker.store.cache import RecommendationCache
from worker.tasks.playlist import (
    TASKS,
    check_arguments,
    forget_playlist,
    ingest_retry_delay,
    recompute_playlist,
)

COMMITS = story_commits()
P1_CREATE, P1_THREE, P1_EIGHT, P1_REORDER, P1_RENAME = COMMITS[:5]


@pytest.fixture
async def docket() -> AsyncIterator[Docket]:
    async with Docket(name=f"test-{uuid.uuid4().hex[:8]}", url="memory://") as docket:
        yield docket


async def test_recompute_writes_the_cache_entry_and_state_with_ttl(docket: Docket) -> None:
    async with embedded_services() as services:
        await enqueue(docket, P1_EIGHT)
        await drain(docket, services)
        value = await cached(services, P1_ID, P1_EIGHT.cid)
        assert value is not None
        assert value["available"] is True
        assert value["strategy"] == "kmeans"
        tracks = value["tracks"]
        assert isinstance(tracks, list)
        # up to 30 are kept ("more"), at most 2 per artist: the sample catalogue has 3
        handles = [track["artist_handle"] for track in tracks]
        assert len(handles) == 6
        assert all(handles.count(handle) == 2 for handle in handles)
        catalog_ids = {int(uri.rsplit("/", 1)[1] != "") for uri in P1_EIGHT.track_uris}
        assert catalog_ids  # the playlist resolved
        playlist_ids = set(await services.recommender.track_ids(P1_EIGHT.track_uris))
        assert not playlist_ids & {track["id"] for track in tracks}
        # eligibility: track 39 (copyright-violation) and 40 (unlisted) never appear
        assert not {39, 40} & {track["id"] for track in tracks}
        for key in (cache_key(P1_ID, P1_EIGHT.cid), state_key(P1_ID), tokens_key(P1_ID)):
            ttl = await services.redis.ttl(key)
            assert CACHE_TTL_SECONDS - 60 < ttl <= CACHE_TTL_SECONDS
        # the owner, from plyr.fm's row: the API's word on whose it is while that is down
        state = await services.cache.get_state(P1_ID)
        assert state is not None
        assert state.owner_did == P1_URI.split("/")[2]


async def test_recompute_is_idempotent_per_version(docket: Docket) -> None:
    counting = CountingStore(sample_store())
    async with embedded_services(store=counting) as services:
        await enqueue(docket, P1_EIGHT)
        await drain(docket, services)
        calls = len(counting.calls)
        await enqueue(docket, P1_EIGHT)
        await drain(docket, services)
        assert len(counting.calls) == calls
        assert services.counts["recompute:already_cached"] == 1


@pytest.mark.parametrize("change", ["reorder", "rename"])
async def test_same_tracks_new_cid_reuses_without_vector_queries(
    docket: Docket, change: str
) -> None:
    counting = CountingStore(sample_store())
    async with embedded_services(store=counting) as services:
        await enqueue(docket, P1_EIGHT)
        await drain(docket, services)
        before = await cached(services, P1_ID, P1_EIGHT.cid)
        counting.calls.clear()
        commit = P1_REORDER if change == "reorder" else P1_RENAME
        assert commit.cid != P1_EIGHT.cid
        await enqueue(docket, commit)
        await drain(docket, services)
        assert counting.calls == []  # zero vector-store requests
        after = await cached(services, P1_ID, commit.cid)
        assert after is not None
        assert before is not None
        assert after["tracks"] == before["tracks"]
        ttl = await services.redis.ttl(cache_key(P1_ID, commit.cid))
        assert ttl > CACHE_TTL_SECONDS - 60
        assert services.counts["recompute:reused"] == 1


async def test_a_changed_track_set_recomputes(docket: Docket) -> None:
    counting = CountingStore(sample_store())
    async with embedded_services(store=counting) as services:
        await enqueue(docket, P1_THREE)
        await drain(docket, services)
        counting.calls.clear()
        await enqueue(docket, P1_EIGHT)
        await drain(docket, services)
        assert counting.calls == ["get_vectors", "query_many"]
        three = await cached(services, P1_ID, P1_THREE.cid)
        eight = await cached(services, P1_ID, P1_EIGHT.cid)
        assert three is not None
        assert eight is not None
        assert three["strategy"] == "rrf"
        assert eight["strategy"] == "kmeans"


async def test_no_track_with_an_embedding_caches_unavailable(docket: Docket) -> None:
    async with embedded_services(store=sample_store(track_ids=[1000, 1001])) as services:
        await enqueue(docket, P1_EIGHT)
        await drain(docket, services)
        value = await cached(services, P1_ID, P1_EIGHT.cid)
        assert value is not None
        assert value["tracks"] == []
        assert value["available"] is False
        assert value["strategy"] == "none"
        assert services.counts["recompute:unavailable"] == 1


async def test_unknown_playlist_waits_then_drops(docket: Docket) -> None:
    async with embedded_services(playlist_wait_seconds=0.3) as services:
        commit = next(c for c in COMMITS if c.playlist_uri == NOT_OURS_URI)
        await enqueue(docket, commit)
        await drain(docket, services)
        assert services.counts["waiting:unknown_playlist"] == 1
        assert services.counts["dropped:unknown_playlist"] == 1
        assert await services.redis.keys("plyr:recommendations:*") == []


async def test_unknown_playlist_is_computed_once_plyr_ingests_it(docket: Docket) -> None:
    async with embedded_services(playlist_wait_seconds=30) as services:
        catalog = services.catalog
        row = await catalog.get_playlist(P1_ID)
        assert row is not None
        catalog.remove_playlist(P1_ID)  # type: ignore[attr-defined]

        async def ingest_later() -> None:
            await asyncio.sleep(0.3)
            catalog.upsert_playlist(row)  # type: ignore[attr-defined]

        ingest = asyncio.create_task(ingest_later())
        await enqueue(docket, P1_THREE)
        await drain(docket, services)
        await ingest
        assert services.counts["waiting:unknown_playlist"] >= 1
        assert await cached(services, P1_ID, P1_THREE.cid) is not None


@pytest.mark.parametrize(
    "fault",
    [TransientStoreError("429 from turbopuffer"), CatalogUnavailableError("connection refused")],
)
async def test_transient_faults_are_retried(docket: Docket, fault: Exception) -> None:
    flaky = FlakyStore(sample_store(), [fault])
    async with embedded_services(store=flaky) as services:
        await enqueue(docket, P1_THREE)
        await drain(docket, services)
        assert services.counts["retried:transient"] == 1
        value = await cached(services, P1_ID, P1_THREE.cid)
        assert value is not None
        assert value["available"] is True


async def test_permanent_faults_are_dropped_not_retried(docket: Docket) -> None:
    flaky = FlakyStore(sample_store(), [PermanentStoreError("401 bad key")] * 5)
    async with embedded_services(store=flaky) as services:
        await enqueue(docket, P1_THREE)
        await drain(docket, services)
        assert flaky.calls == 1
        assert services.counts["dropped:permanent"] == 1
        assert await cached(services, P1_ID, P1_THREE.cid) is None


async def test_malformed_arguments_are_dropped(docket: Docket) -> None:
    async with embedded_services() as services:
        await docket.add(recompute_playlist)("not-a-uri", "cid", "rev", [])
        await docket.add(recompute_playlist)(P1_URI, "", "rev", [])
        await docket.add(recompute_playlist)(P1_URI, "cid", "rev", ["x"] * 501)
        await drain(docket, services)
        assert services.counts["dropped:permanent"] == 3


class GatedStore:
    """records how many queries for one playlist are in flight at once."""

    def __init__(self) -> None:
        self.inner = sample_store()
        self.in_flight = 0
        self.most_in_flight = 0

    async def get_vectors(self, track_ids: Sequence[int]) -> dict[int, Vector]:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0.05)
        self.in_flight -= 1
        return await self.inner.get_vectors(track_ids)

    async def query_many(
        self, vectors: Sequence[Vector], *, top_k: int, exclude_ids: Iterable[int]
    ) -> list[list[Candidate]]:
        return await self.inner.query_many(vectors, top_k=top_k, exclude_ids=exclude_ids)


async def test_two_recomputes_of_one_playlist_never_overlap(docket: Docket) -> None:
    gated = GatedStore()
    async with embedded_services(store=gated) as services:
        # distinct docket keys, same playlist: only the concurrency limit keeps them apart
        await enqueue(docket, P1_THREE, key="a")
        await enqueue(docket, P1_EIGHT, key="b")
        await drain(docket, services, concurrency=4)
        assert gated.most_in_flight == 1
        assert await cached(services, P1_ID, P1_THREE.cid) is not None
        assert await cached(services, P1_ID, P1_EIGHT.cid) is not None


async def test_different_playlists_do_run_side_by_side(docket: Docket) -> None:
    gated = GatedStore()
    async with embedded_services(store=gated) as services:
        p2 = next(c for c in COMMITS if c.playlist_uri == P2_URI)
        await enqueue(docket, P1_THREE)
        await enqueue(docket, p2)
        await drain(docket, services, concurrency=4)
        assert gated.most_in_flight == 2


async def test_an_older_revision_does_not_overwrite_newer_state(docket: Docket) -> None:
    async with embedded_services() as services:
        await enqueue(docket, P1_EIGHT)
        await drain(docket, services)
        await enqueue(docket, P1_THREE)  # arrives late: its rev is older
        await drain(docket, services)
        state = await services.cache.get_state(P1_ID)
        assert state is not None
        assert state.token == P1_EIGHT.cid
        assert await cached(services, P1_ID, P1_THREE.cid) is not None


async def test_forget_removes_every_version_and_state(docket: Docket) -> None:
    async with embedded_services() as services:
        await enqueue(docket, P1_THREE)
        await enqueue(docket, P1_EIGHT, key="second")
        p2 = next(c for c in COMMITS if c.playlist_uri == P2_URI)
        await enqueue(docket, p2)
        await drain(docket, services)
        # plyr.fm drops its row before (or after) we see the delete: either way works
        services.catalog.remove_playlist(P1_ID)  # type: ignore[attr-defined]
        await docket.add(forget_playlist)(P1_URI)
        await drain(docket, services)
        remaining = {key.decode() for key in await services.redis.keys("*")}
        assert not any(P1_ID in key or P1_URI in key for key in remaining)
        assert cache_key(P2_ID, p2.cid) in remaining
        assert services.counts["forget:done"] == 1


async def test_forget_finds_the_versions_the_previous_release_listed(docket: Docket) -> None:
    """the previous release listed a playlist's tokens in a set of strings; this one
    in a sorted set scored by expiry (compact in Redis 7.0). mid-deploy, a forget
    finds the entries either listed, and the tokens past their expiry are trimmed."""
    async with embedded_services() as services:
        redis = services.redis
        await enqueue(docket, P1_EIGHT)
        await drain(docket, services)
        tokens = await redis.zrange(tokens_key(P1_ID), 0, -1, withscores=True)
        assert [token.decode() for token, _ in tokens] == [P1_EIGHT.cid]
        assert tokens[0][1] == pytest.approx(time.time() + CACHE_TTL_SECONDS, abs=5)
        assert await redis.type(tokens_key(P1_ID)) == b"zset"
        # an entry of the previous release, listed in its set; a token long expired
        older = cache_key(P1_ID, "bafyolder")
        await redis.set(older, b"{}", ex=CACHE_TTL_SECONDS)
        await redis.sadd(versions_key(P1_ID), "bafyolder")
        await redis.zadd(tokens_key(P1_ID), {"bafygone": time.time() - 1})
        await enqueue(docket, P1_THREE)
        await drain(docket, services)
        listed = {token.decode() for token in await redis.zrange(tokens_key(P1_ID), 0, -1)}
        assert listed == {P1_EIGHT.cid, P1_THREE.cid}  # trimmed at the write
        await docket.add(forget_playlist)(P1_URI)
        await drain(docket, services)
        remaining = {key.decode() for key in await redis.keys("*")}
        assert not any(P1_ID in key for key in remaining), remaining


async def test_forget_of_an_unknown_playlist_is_a_no_op(docket: Docket) -> None:
    async with embedded_services() as services:
        await docket.add(forget_playlist)(NOT_OURS_URI)
        await drain(docket, services)
        assert services.counts["forget:unknown"] == 1


def test_ingest_wait_is_bounded() -> None:
    assert ingest_retry_delay(1, 120) == 1.0
    assert ingest_retry_delay(2, 120) == 2.0
    assert ingest_retry_delay(6, 120) == 30.0
    delays = []
    attempt = 1
    while (delay := ingest_retry_delay(attempt, 120)) is not None:
        delays.append(delay)
        attempt += 1
    assert sum(delays) == pytest.approx(120)
    assert ingest_retry_delay(1, 0) is None
    assert ingest_retry_delay(1, 0.3) == pytest.approx(0.3)


@pytest.mark.parametrize(
    "arguments",
    [
        ("at://did:plc:a/fm.plyr.list/x", "c" * 201, "r", []),
        ("https://example.com", "c", "r", []),
        ("at://did:plc:a/fm.plyr.list/x", "c", "r" * 65, []),
        ("at://did:plc:a/fm.plyr.list/x", "c", "r", [1]),
        ("at://did:plc:a/fm.plyr.list/x", "c", "r", "not a list"),
    ],
)
def test_check_arguments_rejects(arguments: tuple[object, ...]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        check_arguments(*arguments)  # type: ignore[arg-type]


def test_the_registry_holds_both_tasks() -> None:
    assert {task.__name__ for task in TASKS} == {
        "recompute_playlist",
        "forget_playlist",
        "check_withdrawals",
        "withdraw_track",
        "refill_playlist",
    }


async def test_a_late_forget_spares_a_recreated_playlist(docket: Docket) -> None:
    async with embedded_services() as services:
        await enqueue(docket, P1_EIGHT)  # the re-created playlist, newer than the delete
        await drain(docket, services)
        older_delete_rev = "3m64ho4aaaa22"
        assert older_delete_rev < P1_EIGHT.rev
        await docket.add(forget_playlist)(P1_URI, older_delete_rev)
        await drain(docket, services)
        assert services.counts["forget:superseded"] == 1
        assert await cached(services, P1_ID, P1_EIGHT.cid) is not None


async def test_an_unreadable_entry_is_recomputed_not_taken_for_done(docket: Docket) -> None:
    async with embedded_services() as services:
        await services.redis.set(cache_key(P1_ID, P1_THREE.cid), b"{not json")
        await enqueue(docket, P1_THREE)
        await drain(docket, services)
        value = await cached(services, P1_ID, P1_THREE.cid)
        assert value is not None
        assert value["available"] is True
        assert services.cache.counts["corrupt_entries"] == 1


async def test_a_retry_that_outlives_the_playlists_delete_writes_nothing(docket: Docket) -> None:
    """seen in "turbopuffer 429": a recompute failing while its playlist was deleted was
    retried after the forget and cached a deleted playlist again."""
    store = HeldStore(TransientStoreError("429 from turbopuffer"))
    async with embedded_services(store=store) as services:
        await enqueue(docket, P1_EIGHT, key=recompute_key(P1_URI))
        running = asyncio.create_task(drain(docket, services))
        await asyncio.wait_for(store.entered.wait(), 10)
        # the delete arrives while the recompute runs. the consumer also cancels what
        # is pending, and docket now cancels a running task on that too (no retry);
        # left out here, it stands for a run the cancel missed (or that another path
        # enqueued under the same key), whose retry comes after the forget: it must drop
        delete_rev = "3zzzzzzzzzzz2"
        assert delete_rev > P1_EIGHT.rev
        await docket.add(forget_playlist, key=forget_key(P1_URI))(P1_URI, delete_rev)
        store.release.set()
        await asyncio.wait_for(running, 30)
        assert await cached(services, P1_ID, P1_EIGHT.cid) is None
        assert await services.cache.get_state(P1_ID) is None
        assert services.counts["retried:transient"] == 1
        assert services.counts["dropped:deleted"] == 1, dict(services.counts)


async def test_a_playlist_recreated_after_its_delete_is_computed(docket: Docket) -> None:
    async with embedded_services() as services:
        older_delete_rev = "3m64ho4aaaa22"
        assert older_delete_rev < P1_EIGHT.rev
        await docket.add(forget_playlist)(P1_URI, older_delete_rev)
        await drain(docket, services)
        await enqueue(docket, P1_EIGHT)  # its rev is newer than the delete's
        await drain(docket, services)
        assert services.counts["dropped:deleted"] == 0
        assert await cached(services, P1_ID, P1_EIGHT.cid) is not None


async def test_a_late_older_state_is_refused_at_the_write_itself(
    redis_client: aioredis.Redis,
) -> None:
    """the revision check is part of the write: two runs that overlap anyway (a lock
    whose lease ran out) cannot put an older state over a newer one."""
    cache = RecommendationCache(redis_client)
    playlist_id = f"p-{uuid.uuid4().hex}"
    value = CachedRecommendations([], True, "single", "f", "now")
    newer = PlaylistState("cid-new", "f2", [2], [], "3m64ho4bbbb22", "did:plc:owner")
    older = PlaylistState("cid-old", "f1", [1], [], "3m64ho4aaaa22", "did:plc:owner")
    assert (await cache.put(playlist_id, "cid-new", value, newer)).state_written
    assert not (await cache.put(playlist_id, "cid-old", value, older)).state_written
    assert await cache.get_state(playlist_id) == newer
    assert await cache.get(playlist_id, "cid-old") is not None  # its own entry is kept
    # an unreadable state there is no reason to keep it
    await redis_client.set(state_key(playlist_id), b"{broken")
    assert (await cache.put(playlist_id, "cid-old", value, older)).state_written
    assert await cache.get_state(playlist_id) == older
