"""the yardstick (`bench.yardstick`): one measurement through its real entry point (a
fresh interpreter), and the arithmetic that puts a CPU figure at its reference
speed. no figure here is a speed."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from bench.yardstick import REFERENCE_MS, HostSpeed, measure


def test_a_measurement_runs_in_a_fresh_interpreter_and_is_a_positive_time() -> None:
    assert asyncio.run(measure(rounds=1)) > 0


def test_a_bad_round_count_is_refused_with_a_clear_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.yardstick", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "rounds must be within 1..50" in result.stderr


def test_a_figure_from_a_slower_host_comes_down_to_the_reference_speed() -> None:
    # the yardstick took twice its reference time: the host ran at half speed, so
    # 10 ms measured then is 5 ms at the reference speed
    slow = HostSpeed(before_ms=2 * REFERENCE_MS, after_ms=2 * REFERENCE_MS)
    assert slow.at_reference(10.0) == pytest.approx(5.0)
    assert slow.to_json()["speed"] == pytest.approx(0.5)
    assert "0.50x the reference speed" in slow.line()
    assert "changed speed" not in slow.line()


def test_a_host_that_changed_speed_during_the_run_is_said_to_have() -> None:
    moved = HostSpeed(before_ms=REFERENCE_MS, after_ms=1.5 * REFERENCE_MS)
    assert moved.drift == pytest.approx(0.5)
    # the mean of before and after is the run's speed
    assert moved.at_reference(10.0) == pytest.approx(10.0 / 1.25)
    assert "the host changed speed during the run" in moved.line()
