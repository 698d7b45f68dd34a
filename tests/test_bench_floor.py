"""`python -m bench floor`: its entry point run as a process at a tiny size (every step
measured, the whole run through a real docket worker), its refusals, the playlists it
recomputes, and the arithmetic of its report. no figure here is a speed."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest

from bench.floor_report import FloorFigures, Reference, Step
from bench.floor_world import WORLD, floor_playlists, max_playlists, median_playlist_size
from tests.support.bench_cli import run_bench

STEPS = {
    "turbopuffer.get_vectors",
    "turbopuffer.query_many",
    "postgres.resolve",
    "postgres.hydrate",
    "redis.lock",
    "redis.budget",
    "redis.write",
    "docket.run",
    "engine",
}


bench = partial(run_bench, "floor")


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_a_tiny_floor_run_measures_every_step_and_the_whole(tmp_path: Path) -> None:
    figures_path = tmp_path / "floor.json"
    result = bench(
        "--rounds", "1", "--playlists", "5", "--tasks", "10", "--round-seconds", "0.02",
        "--batch-size", "2", "--json", str(figures_path), timeout=100,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "glue: whole - sum" in result.stdout
    assert "SDK / bare" in result.stdout
    assert "the hydrate of the lists' heads" in " ".join(result.stdout.split())
    figures = json.loads(figures_path.read_bytes())
    steps = figures["steps"]
    # every required step, and apart: the enqueue side (another process's CPU) and the
    # PDS read (the reconcile pass's, before the task)
    assert set(steps) == STEPS | {"docket.enqueue", "pds.fetch"}
    assert not steps["docket.enqueue"]["in_sum"]
    assert not steps["pds.fetch"]["in_sum"]
    # the PDS read through the client now, beside the httpx client it had before
    assert figures["pds_before_us"] > 0
    assert "the PDS read through aiohttp (now) beside httpx" in " ".join(result.stdout.split())
    assert all(steps[key]["in_sum"] for key in STEPS)
    for key, step in steps.items():
        assert step["us_per_call"] > 0, key
        assert step["us_per_recompute"] == step["calls_per_recompute"] * step["us_per_call"]
        if step["in_sum"]:
            assert figures["whole_us"] >= step["us_per_recompute"], key
    assert figures["sum_us"] == pytest.approx(
        sum(steps[key]["us_per_recompute"] for key in STEPS), rel=1e-12
    )
    assert figures["glue_us"] == pytest.approx(figures["whole_us"] - figures["sum_us"])
    assert figures["idle_us"] > 0  # a waiting worker still polls
    # the same recomputes batched as the reconcile loop enqueues them (5 playlists, 2 a
    # task: a batch of one too), measured beside the whole
    assert figures["batch_size"] == 2
    assert figures["whole_batched_us"] > 0
    assert "whole, batched: 2 to a recompute_batch task" in " ".join(result.stdout.split())
    # the Redis steps again through a client packing commands in Python (redis-py's way)
    assert set(figures["python_packed_us"]) == {"redis.lock", "redis.budget", "redis.write"}
    assert all(us > 0 for us in figures["python_packed_us"].values())
    assert "packed by hiredis (the service's) beside redis-py's Python packing" in " ".join(
        result.stdout.split()
    )
    # the host's speed during the run, and the figures at the yardstick's reference
    speed = figures["host"]["speed"]
    assert speed > 0
    at_reference = figures["at_reference"]
    assert at_reference["whole_us"] == pytest.approx(figures["whole_us"] * speed)
    assert at_reference["sum_us"] == pytest.approx(figures["sum_us"] * speed)
    # the typical playlist: the world's median size, three moods, the engine's top_k
    assert figures["tracks"] == median_playlist_size()
    assert figures["queries"] == 3
    assert figures["top_k"] == 115
    assert figures["candidates"] > figures["top_k"]
    # the hydrate reads the lists' heads, measured beside every candidate
    assert figures["every_candidate"] > figures["candidates"]
    assert figures["hydrate_every_us"] > 0
    for key in ("turbopuffer.get_vectors", "turbopuffer.query_many"):
        reference = figures["references"][key]
        assert reference["sdk_us"] == steps[key]["us_per_call"]
        assert reference["bare_us"] > 0
        assert reference["ratio"] == reference["sdk_us"] / reference["bare_us"]


def test_more_playlists_than_fit_without_a_shared_track_are_refused() -> None:
    result = bench("--playlists", "400", "--tracks", "40")
    assert result.returncode == 2
    assert f"at most {max_playlists(40)} playlists of 40 tracks" in result.stderr


def test_the_recomputed_playlists_share_no_track_and_have_three_moods() -> None:
    tracks = median_playlist_size()
    count = max_playlists(tracks)
    playlists = floor_playlists(count, tracks)
    seen: set[int] = set()
    for playlist in playlists:
        assert len(playlist.track_ids) == tracks
        assert seen.isdisjoint(playlist.track_ids)
        seen.update(playlist.track_ids)
        regions = {(t - 1) % WORLD.regions for t in playlist.track_ids}
        assert len(regions) == 3
    assert len({p.known.playlist_id for p in playlists}) == count
    with pytest.raises(ValueError, match="without sharing one"):
        floor_playlists(count + 1, tracks)


def test_the_sum_counts_only_the_steps_in_it_and_the_glue_is_the_rest() -> None:
    figures = FloorFigures(
        tracks=23,
        queries=3,
        top_k=115,
        candidates=150,
        every_candidate=340,
        hydrate_every_us=2_000.0,
        playlists=10,
        tasks=10,
        rounds=1,
        concurrency=10,
        loop="uvloop",
        whole_us=10_000.0,
        idle_us=500.0,
        whole_wall_seconds=1.0,
        steps=[
            Step("a", "a", 1, 3_000.0),
            Step("b", "b", 2, 1_500.0),
            Step("enqueue", "enqueue", 1, 700.0, in_sum=False),
        ],
        references=[Reference("a", "a", 3_000.0, 1_000.0)],
    )
    assert figures.sum_us == 6_000.0
    assert figures.glue_us == 4_000.0
    data = figures.to_json()
    assert data["steps"]["b"]["us_per_recompute"] == 3_000.0
    assert data["references"]["a"]["ratio"] == 3.0
