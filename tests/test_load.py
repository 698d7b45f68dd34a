"""the API under load while the worker recomputes, in CI: a short run of
`bench.load.api_load` against the production processes (`plyr-recs api`, `worker`
and `jetstream` as subprocesses) on the session's redis-server and a fresh
PostgreSQL database. no timing is asserted here: the figures are the benchmark's
(`uv run python -m bench.load.api_load`); this checks what must hold at any speed."""

from __future__ import annotations

import signal
from collections import Counter

import numpy as np
import pytest
import redis.asyncio as aioredis

from bench.load.api_load import load_options, run_load
from bench.load.servers import NAMESPACE, IndexedTurbopufferServer
from bench.load.world import (
    EDITS_ONLY,
    FIRST_TRACK_ID,
    StreamSpec,
    WorldSpec,
    latest_versions,
)
from bench.loopback.servers import RedisServer
from bench.loopback.turbopuffer import TurbopufferServer
from engine.turbopuffer_store import TurbopufferStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

WINDOW_SECONDS = 4.0
WORLD = WorldSpec(tracks=2_000, artists=50, playlists=40)


async def test_every_request_is_answered_from_the_warm_cache_while_the_worker_recomputes(
    redis_server: RedisServer, redis_client: aioredis.Redis, postgres_dsn: str
) -> None:
    options = load_options(
        seconds=WINDOW_SECONDS, edit_rate=10.0, world=WORLD, debounce_seconds=0.3
    )
    result = await run_load(
        options,
        seconds=WINDOW_SECONDS,
        clients=4,
        redis_url=redis_server.url,
        database_dsn=postgres_dsn,
        baseline_seconds=1.0,
    )
    load = result.load
    # the baseline window: the same clients on the warm cache, nothing recomputing
    assert result.idle is not None
    assert result.idle.requests > 0
    assert set(result.idle.statuses) == {200}
    assert set(result.idle.sources) == {"hit"}

    assert load.requests > 0
    assert load.errors == Counter(), "refused, reset or timed-out requests"
    assert set(load.statuses) == {200}, f"non-2xx answers: {load.statuses}"
    # the cache the worker warmed served every request, while it wrote new versions
    assert set(load.sources) == {"hit"}
    assert load.unavailable == 0
    # recomputes progressed during the window, and none was lost afterwards
    assert result.recomputes["computed"] + result.recomputes["reused"] > 0
    assert result.consumer.recomputes > 0
    assert result.edited_playlists > 0
    assert result.newest_cached == result.edited_playlists
    assert result.errors_logged == {"api": 0, "worker": 0, "jetstream": 0}
    # each stopped on SIGTERM in time (uvicorn re-raises the signal once shut down)
    assert result.exit_codes["jetstream"] == 0
    assert result.exit_codes["worker"] == 0
    assert result.exit_codes["api"] in (0, -signal.SIGTERM)


def test_the_stream_is_a_pure_function_of_its_parameters() -> None:
    """the stream server, the driver and a reconnect rebuild the same frames."""
    stream = StreamSpec(world=WORLD, start_time_us=1_700_000_000_000_000, mix=EDITS_ONLY)
    again = StreamSpec.from_json(stream.to_json())
    frames = range(WORLD.playlists + 200)
    assert [stream.frame(i) for i in frames] == [again.frame(i) for i in frames]
    assert stream.first_index_at(stream.time_us(57)) == 57
    assert stream.first_index_at(stream.time_us(57) - 1) == 57
    # the creates carry exactly the rows plyr.fm holds (the API's cache tokens)
    rows = {row["id"]: row for row in WORLD.catalog_rows()["playlists"]}
    for index in range(WORLD.playlists):
        edit = stream.edit(index)
        assert edit is not None
        assert rows[edit.playlist.playlist_id]["atproto_record_cid"] == edit.cid
    latest = latest_versions(stream, len(frames))
    assert len(latest) == WORLD.playlists
    assert any(edit.index >= WORLD.playlists for edit in latest.values())


async def test_the_indexed_stand_in_answers_the_real_client_as_the_tests_server_does() -> None:
    """the load runs' turbopuffer stand-in takes shortcuts; the answers must not change."""
    world = WorldSpec(tracks=600, artists=20, playlists=4)
    vectors = world.vectors()
    reference = TurbopufferServer()
    reference.seed(NAMESPACE, {FIRST_TRACK_ID + row: v for row, v in enumerate(vectors)})
    indexed = IndexedTurbopufferServer(0, vectors)
    # only the indexed path can answer now: the reference documents are gone
    indexed.namespaces[NAMESPACE].documents.clear()
    playlist = list(world.known[0].track_ids)
    targets = [vectors[t - FIRST_TRACK_ID] for t in playlist[:3]]

    answers = []
    async with reference, indexed:
        for server in (reference, indexed):
            async with TurbopufferStore(
                api_key="load", namespace=NAMESPACE, base_url=server.base_url, max_retries=0
            ) as store:
                found = await store.get_vectors([*playlist, 999_999])
                ranked = await store.query_many(targets, top_k=25, exclude_ids=playlist)
            answers.append((found, ranked))

    (found, ranked), (indexed_found, indexed_ranked) = answers
    assert sorted(indexed_found) == sorted(found) == sorted(playlist)
    for track_id, vector in found.items():
        np.testing.assert_array_equal(indexed_found[track_id], vector)
    assert [[c.track_id for c in hits] for hits in indexed_ranked] == [
        [c.track_id for c in hits] for hits in ranked
    ]
    assert all(
        len(hits) == 25 and not set(playlist) & {c.track_id for c in hits} for hits in ranked
    )
    for hits, indexed_hits in zip(ranked, indexed_ranked, strict=True):
        for hit, indexed_hit in zip(hits, indexed_hits, strict=True):
            assert indexed_hit.distance == pytest.approx(hit.distance, abs=1e-5)
