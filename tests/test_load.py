"""the API under load while the worker recomputes, in CI: a short run of
`benchmarks.api_load` against the production processes (`plyr-recs api`, `worker`
and `jetstream` as subprocesses) on the session's redis-server and a fresh
PostgreSQL database. no timing is asserted here: the figures are the benchmark's
(`uv run python -m benchmarks.api_load`); this checks what must hold at any speed."""

from __future__ import annotations

import signal
from collections import Counter

import pytest
import redis.asyncio as aioredis

from benchmarks.api_load import load_options, run_load
from benchmarks.load_world import EDITS_ONLY, StreamSpec, WorldSpec, latest_versions
from worker.local_servers import RedisServer

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
    )
    load = result.load

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
