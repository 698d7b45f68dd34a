"""`python -m bench reliability`, the report's entry point, run as a process: the CI
world with only the fault-free scenario (every other scenario runs in
tests/test_reliability_faults.py), and its refusal of a bad option."""

from __future__ import annotations

from functools import partial

import pytest

from tests.support.bench_cli import run_bench

pytestmark = pytest.mark.integration


bench = partial(run_bench, "reliability", timeout=240)


@pytest.mark.timeout(300)
def test_the_report_prints_the_table_of_a_clean_run() -> None:
    # `--only` names no scenario: the fault-free one, the reference, always runs
    result = bench("--size", "ci", "--only", "no such scenario")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("| scenario"))
    assert [cell.strip() for cell in header.strip("|").split("|")] == [
        "scenario", "events", "faults", "lost", "wrong", "asked", "5xx", "recover", "settle"
    ]  # fmt: skip
    rows = [line for line in lines if line.startswith("| ") and line is not header]
    assert len(rows) == 1
    scenario, events, faults, lost, wrong, asked, errors, *_ = (
        cell.strip() for cell in rows[0].strip("|").split("|")
    )
    assert (scenario, faults, lost, wrong, errors) == ("none", "0", "0", "0", "0")
    assert int(events) > 200  # the CI stream: a couple of hundred frames
    assert int(asked) > 0  # the API was asked throughout


def test_a_bad_size_is_refused_with_a_clear_error() -> None:
    result = bench("--size", "huge", timeout=60)
    assert result.returncode == 2
    assert "size is full or ci" in result.stderr
