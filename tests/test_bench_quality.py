"""`python -m bench quality` on its quick world: the run, the report and the CLI.

no figure here is a speed; the quality figures asserted are the ones the engine's
defaults were chosen for (README, "Quality"), on a deterministic world."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from bench.cli import app
from bench.quality import GOAL_CLASS, TOPS, evaluate, report
from bench.quality_algorithms import by_name
from bench.quality_world import QUICK, build_world


def test_the_world_keeps_the_truth_it_promises() -> None:
    world = build_world(QUICK, 1)
    assert len(world.playlists) == QUICK.playlists
    assert {len(p.regions) for p in world.playlists} == {1, 2, 3}
    for playlist in world.playlists:
        assert abs(sum(playlist.mix) - 1.0) < 1e-9
        assert len(set(playlist.track_ids)) == playlist.size
        if playlist.held_out is not None:
            assert playlist.held_out in playlist.track_ids
            assert world.recommendable[playlist.held_out - 1]
    # tracks without embeddings and ineligible ones exist, and reach playlists
    assert len(world.store) < QUICK.tracks
    assert not world.recommendable.all()
    in_playlists = {t for p in world.playlists for t in p.track_ids}
    assert any(not world.recommendable[t - 1] for t in in_playlists)


def test_the_engines_defaults_beat_the_seed_where_the_goals_are_set() -> None:
    results, seconds = asyncio.run(evaluate(QUICK, [1], by_name(["seed", "engine"])))
    assert set(seconds) == {"seed", "engine"}
    for n in TOPS:
        seed = results["seed"][1][n][GOAL_CLASS]
        engine = results["engine"][1][n][GOAL_CLASS]
        for measure in ("coverage", "fidelity"):
            mine, theirs = engine[measure], seed[measure]
            assert mine is not None
            assert theirs is not None
            assert mine > theirs
        assert engine["precision"] is not None
        assert engine["precision"] >= 0.98
        for name, figures in results["engine"][1][n].items():
            for measure in ("precision", "coverage", "fidelity", "novelty"):
                value = figures[measure]
                assert value is None or 0.0 <= value <= 1.0, (name, measure)
    output = io.StringIO()
    lines = report(Console(file=output, width=200), results, seconds)
    assert [line.split(":")[0] for line in lines] == [
        "seed top 10", "seed top 3", "engine top 10", "engine top 3"
    ]  # fmt: skip
    # the quick world's goal-class figures are asserted above; its smallest classes
    # are noisier than the full world's (the README's tables)
    assert lines[3].startswith("engine top 3: ")
    assert lines[0].startswith("seed top 10: misses: coverage")
    assert "per seed" in output.getvalue()


def test_the_command_writes_its_figures(tmp_path: Path) -> None:
    path = tmp_path / "quality.json"
    result = CliRunner().invoke(
        app,
        [
            "quality",
            "--quick",
            "--seeds",
            "2",
            "--algorithms",
            "mean,rrf",
            "--json",
            str(path),
        ],
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(path.read_text())
    assert set(figures) == {"mean", "rrf"}
    assert set(figures["rrf"]["2"]) == {str(n) for n in TOPS}


def test_the_command_refuses_unknown_algorithms_and_bad_seeds() -> None:
    runner = CliRunner()
    unknown = runner.invoke(app, ["quality", "--quick", "--algorithms", "magic"])
    assert unknown.exit_code == 2
    assert "unknown algorithms" in unknown.output
    assert runner.invoke(app, ["quality", "--quick", "--seeds", "x"]).exit_code == 2
