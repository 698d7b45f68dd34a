"""`python -m bench scale`: its entry point run as a process at a tiny size (every
live playlist cached, bytes counted, the warm pass done), its refusal of a bad
option, and the arithmetic of its report. no figure here is a speed."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest

from bench.journey_servers import DELETED_EVERY
from bench.scale import parse_outcomes
from bench.scale_redis import FamilyBytes, family_name
from bench.scale_report import PassFigures, RunFigures, extrapolate
from tests.support.bench_cli import run_bench

PLAYLISTS = 50


bench = partial(run_bench, "scale")


@pytest.mark.integration
@pytest.mark.timeout(400)
def test_a_tiny_scale_run_warms_everything_and_reports_it(tmp_path: Path) -> None:
    figures_path = tmp_path / "scale.json"
    # a 2 s idle baseline instead of 10 s: the pass's round trips are still netted of it
    # (and must stay above zero); PostgreSQL's statistics keep their full settle
    result = bench(
        "--playlists", str(PLAYLISTS), "--workers", "1", "--idle-window", "2",
        "--json", str(figures_path), timeout=360,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "scale: cold deploy of" in result.stdout
    assert "extrapolated to 1,000,000 playlists" in result.stdout
    (run,) = json.loads(figures_path.read_bytes())
    deleted = PLAYLISTS // DELETED_EVERY  # on plyr.fm's database, gone from the PDS
    assert run["live"] == PLAYLISTS - deleted
    assert run["cached"] == run["live"]
    # one recompute per live playlist at least, counted by the worker's own /metrics
    assert run["outcomes"]["recompute:computed"] >= run["live"]
    assert run["worker_cpu_seconds"] > 0
    assert run["worker_per_stand_in"] == run["worker_cpu_seconds"] / run["stand_in_cpu_seconds"]
    assert "the host's speed netted out" in result.stdout
    # the yardstick before and after, and the CPU per recompute put at its speed
    host = run["host"]
    assert host["samples_ms"]  # rounds taken while the deploy ran
    assert all(ms > 0 for ms in host["samples_ms"])
    assert run["cpu_ms_per_recompute"] == pytest.approx(
        1e3
        * run["worker_cpu_seconds"]
        / sum(n for kind, n in run["outcomes"].items() if kind.startswith("recompute:"))
    )
    at_reference = run["cpu_ms_per_recompute"] * host["speed"]
    assert run["cpu_ms_per_recompute_at_reference"] == pytest.approx(at_reference)
    said = " ".join(result.stdout.split())  # the console wraps long lines
    assert "yardstick (bench.yardstick)" in said
    assert "at the yardstick's reference speed (goal <= 5 ms)" in said
    assert run["pds_reads"] >= run["live"]  # the cold pass read every record
    for family in ("recommendations", "state", "tokens", "withdrawal_carriers"):
        assert run["memory"][family]["keys"] > 0, family
        assert run["memory"][family]["bytes"] > 0, family
    assert run["memory"]["recommendations"]["keys"] == run["cached"]
    assert 0 < run["service_bytes_per_playlist"] <= run["keys_bytes_per_playlist"]
    warm = run["warm_pass"]
    assert warm["listed"] == PLAYLISTS
    assert warm["seconds"] > 0
    assert warm["counts"]["warm"] == run["live"]
    assert not any(kind.startswith("enqueued:") for kind in warm["counts"])
    # only the records gone from their PDS are asked again
    assert warm["pds_reads"] <= deleted
    assert warm["pg_rows"] >= PLAYLISTS
    assert warm["redis_reads"] > 0


def test_a_bad_worker_count_is_refused_with_a_clear_error() -> None:
    result = bench("--workers", "1,0")
    assert result.returncode == 2
    assert "worker counts must be within 1..16" in result.stderr


def test_the_recompute_counters_are_read_from_the_workers_metrics() -> None:
    text = "\n".join(
        [
            "# TYPE plyr_recs_worker_outcomes_total counter",
            'plyr_recs_worker_outcomes_total{kind="recompute:computed"} 12.0',
            'plyr_recs_worker_outcomes_total{kind="recompute:reused"} 3.0',
            'plyr_recs_worker_outcomes_total{kind="dropped:deleted"} 5.0',
            'plyr_recs_worker_recompute_seconds_count{outcome="computed"} 12.0',
        ]
    )
    assert parse_outcomes(text) == {
        "recompute:computed": 12,
        "recompute:reused": 3,
        "dropped:deleted": 5,
    }


def test_keys_are_sorted_into_their_families() -> None:
    assert family_name("plyr:recommendations:p1:tok", "q") == "recommendations"
    assert family_name("plyr:recommendations-state:p1", "q") == "state"
    assert family_name("plyr:withdrawal-carriers:42", "q") == "withdrawal_carriers"
    assert family_name("q:stream", "q") == "docket"
    assert family_name("someone-else", "q") == "other"


def run_figures(*, workers: int, cpu: float, recomputes: int) -> RunFigures:
    return RunFigures(
        workers=workers,
        live=1_000,
        cached=1_000,
        ready_seconds=5.0,
        half_seconds=10.0,
        full_seconds=25.0,
        worker_cpu_seconds=cpu,
        service_cpu_seconds=cpu + 1,
        stand_in_cpu_seconds=2.0,
        redis_cpu_seconds=1.0,
        outcomes={"recompute:computed": recomputes, "retried:busy": 7},
        pds_reads=recomputes,
        memory={
            "recommendations": FamilyBytes(1_000, 3_000_000),
            "state": FamilyBytes(1_000, 1_000_000),
            "docket": FamilyBytes(10, 5_000_000),
        },
        used_memory_delta=9_000_000,
        warm_pass=PassFigures(
            seconds=0.25,
            wall_seconds=0.5,
            listed=1_000,
            counts={"warm": 1_000},
            pg_rows=2_000,
            redis_commands=4_000,
            redis_reads=20,
            redis_idle_reads_per_second=3.0,
            pds_reads=0,
            worker_cpu_seconds=0.2,
        ),
    )


def test_the_extrapolation_is_linear_in_the_measured_per_playlist_figures() -> None:
    run = run_figures(workers=1, cpu=20.0, recomputes=1_000)
    assert run.per_cpu_second == 50.0
    assert run.service_bytes_per_playlist == 4_000  # docket's runs are not the service's
    assert run.keys_bytes_per_playlist == 9_000
    found = extrapolate(run, playlists=1_000_000, ttl_seconds=86_400, margin_seconds=3_600)
    assert found.redis_bytes == 4_000 * 1_000_000
    assert found.redis_bytes_active == pytest.approx(4_000 * 100_000)
    assert found.pass_seconds == pytest.approx(250.0)  # 0.25 s per 1,000
    # 100,000 active, one record read each per (86,400 - 3,600 - 300) s
    assert found.pds_reads_per_second == pytest.approx(100_000 / 82_500)
    assert found.cold_deploy_seconds == pytest.approx(25_000.0)  # 1,000 per 25 s
