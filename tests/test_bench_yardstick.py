"""the yardstick (`bench.yardstick`): its rounds through its real entry point (a
process of its own), and the arithmetic that puts a CPU figure at its reference
speed. no figure here is a speed."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import orjson
import pytest

from bench.yardstick import REFERENCE_MS, HostSpeed, Sampler


def yardstick(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.yardstick", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_one_measurement_is_printed_as_json() -> None:
    result = yardstick("1")
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout)["ms"] > 0


def test_the_sampler_takes_rounds_while_its_block_runs_and_stops_with_it() -> None:
    async def sample() -> tuple[Sampler, int | None]:
        async with Sampler(every=0.1) as sampler:
            while len(sampler.samples) < 3:  # noqa: ASYNC110 (a list the reader fills)
                await asyncio.sleep(0.05)
        assert sampler._process is not None
        return sampler, sampler._process.returncode

    sampler, returncode = asyncio.run(asyncio.wait_for(sample(), timeout=30))
    assert returncode is not None  # the process ended with the block
    host = sampler.host()
    assert len(host.samples) >= 3
    assert all(ms > 0 for ms in host.samples)


def test_bad_arguments_are_refused_with_a_clear_error() -> None:
    result = yardstick("0")
    assert result.returncode != 0
    assert "rounds must be within 1..50" in result.stderr
    result = yardstick("--every", "0")
    assert result.returncode != 0
    assert "--every must be within 0.1..600 seconds" in result.stderr


def test_a_figure_from_a_slower_host_comes_down_to_the_reference_speed() -> None:
    # the rounds took twice the reference: the host ran at half speed, so 10 ms
    # measured then is 5 ms at the reference speed (the median round decides)
    slow = HostSpeed((2 * REFERENCE_MS, 2 * REFERENCE_MS, 2.1 * REFERENCE_MS))
    assert slow.at_reference(10.0) == pytest.approx(5.0)
    assert slow.to_json()["speed"] == pytest.approx(0.5)
    assert "0.50x the reference speed" in slow.line()
    assert "moved" not in slow.line()


def test_a_host_whose_speed_moved_during_the_run_is_said_to_have() -> None:
    moved = HostSpeed((REFERENCE_MS, 1.2 * REFERENCE_MS, 1.5 * REFERENCE_MS))
    assert moved.spread == pytest.approx(0.5)
    assert moved.at_reference(12.0) == pytest.approx(10.0)
    assert "its speed moved by more than 25%" in moved.line()


def test_a_sampler_that_took_no_round_says_so() -> None:
    with pytest.raises(RuntimeError, match="took no sample"):
        Sampler().host()
