"""`plyr-recs run --until-idle` as a newcomer runs it: a subprocess in a fresh
directory, here pointed at a real redis-server so the test can read the cache."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import redis

from bench.loopback.servers import RedisServer
from engine.cache import cache_key, cache_key_pattern
from tests.support.embedded_run import run_until_idle

pytestmark = pytest.mark.timeout(180)


def test_run_until_idle_leaves_every_final_version_cached(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("REDIS_", "DOCKET_", "DATABASE_", "TURBOPUFFER_", "JETSTREAM_"))
    }
    environment |= {"REDIS_URL": redis_server.url, "COLUMNS": "120"}
    result, summary = run_until_idle(tmp_path, environment)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert summary is not None
    assert summary["reason"] == "idle"
    # the catalogue was generated into the fresh cache directory
    assert list((tmp_path / "cache" / "plyr-recs").glob("*.npz"))

    playlists = summary["playlists"]
    assert any(p["deleted"] for p in playlists)
    assert any(not p["deleted"] for p in playlists)
    for playlist in playlists:
        if playlist["deleted"]:
            keys = list(client.scan_iter(match=cache_key_pattern(playlist["playlist_id"])))
            assert keys == [], playlist
        else:
            raw = client.get(cache_key(playlist["playlist_id"], playlist["cid"]))
            assert raw is not None, playlist
            assert json.loads(raw)["available"] is True
    # the three strategies ran
    assert set(summary["strategies"]) == {"direct", "rrf", "kmeans"}
    # malformed frames were survived and counted
    assert summary["consumer"]["invalid"] > 0

    # the printed request was made and answered with recommendations
    check = summary["api_check"]
    assert check["status"] == 200
    assert check["body"]["available"] is True
    assert 1 <= len(check["body"]["tracks"]) <= 3
    assert "curl -H 'X-Internal-Token:" in result.stdout
    assert check["url"] in result.stdout
