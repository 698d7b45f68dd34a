"""`python -m bench pds-client` runs for real at a tiny size: both clients read the
same records from the loopback PDS, and the figures and their ratio are reported."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.support.bench_cli import run_bench

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_the_pds_client_benchmark_reports_both_clients(tmp_path: Path) -> None:
    figures = tmp_path / "pds-client.json"
    done = run_bench("pds-client", "--rounds", "1", "--reads", "32", "--json", str(figures))
    assert done.returncode == 0, done.stderr
    paths = orjson.loads(figures.read_bytes())
    assert [path["name"] for path in paths] == [
        "aiohttp (PdsRecords now)",
        "httpx (the client before)",
    ]
    for path in paths:
        assert path["sequential_us"] > 0
        assert path["burst_us"] > 0
    assert "now / before" in done.stdout


def test_the_pds_client_benchmark_refuses_too_few_reads() -> None:
    done = run_bench("pds-client", "--reads", "3")
    assert done.returncode == 2
    assert "--reads" in done.stderr
