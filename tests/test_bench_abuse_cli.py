"""`python -m bench abuse`, the report's entry point, run as a process: two of the
components' rows alone (`--only`, a short duration) with their verdicts read back from
the printed table, one of the API table's issue-23 rows the same way, and the
refusal of a row name it does not know."""

from __future__ import annotations

from functools import partial

import pytest

from bench.abuse.table import API_COLUMNS
from tests.support.bench_cli import run_bench

pytestmark = pytest.mark.integration


bench = partial(run_bench, "abuse", timeout=240)


def table_rows(output: str, title: str) -> list[list[str]]:
    """the rows of the table titled `title` (rows ruled apart), each a list of its
    cells, a cell that rich wrapped over several lines joined with spaces."""
    lines = output.splitlines()
    start = next(n for n, line in enumerate(lines) if title in line)
    rows: list[list[str]] = []
    current: list[str] | None = None
    for line in lines[start:]:
        if line.startswith(("├", "└")) and current is not None:
            rows.append(current)
            current = None
        if line.startswith("└"):
            break
        if line.startswith("│"):
            cells = [cell.strip() for cell in line.strip().strip("│").split("│")]
            current = (
                cells
                if current is None
                else [f"{a} {b}".strip() for a, b in zip(current, cells, strict=True)]
            )
    return rows


@pytest.mark.timeout(300)
def test_two_component_rows_run_alone_and_pass() -> None:
    result = bench("--only", "slow_endless_pds,editor_page", "--seconds", "1")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    rows = table_rows(result.stdout, "components:")
    assert [row[0] for row in rows] == [
        "slow PDS, endless cursor (reconcile reads)",
        "editor page: hanging edits, two Hosts",
    ]
    assert [row[-1] for row in rows] == ["ok", "ok"]
    slow, editor = rows
    # the legitimate playlists beside the slow host were all read, the host remembered
    assert slow[3].startswith("20/20 read")
    assert "0 in the next page" in slow[4]
    # every hanging edit answered 408 and closed, every two-Host request a 400
    assert "408: 200/200" in editor[4]
    assert "held past 3 s: 0" in editor[4]
    assert "abuse: legitimate owners" not in result.stdout  # no API attack was asked for


@pytest.mark.timeout(400)
def test_the_hostile_pds_row_judges_every_legitimate_user_and_the_pds_requests() -> None:
    result = bench("--only", "hostile_pds", "--seconds", "2", "--rate", "10", timeout=360)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    rows = table_rows(result.stdout, "abuse: legitimate owners")
    header = next(line for line in result.stdout.splitlines() if "attack" in line and "┃" in line)
    assert "web new" in result.stdout
    assert "PDS reqs" in header
    assert [row[0] for row in rows] == ["quiet (baseline)", "hostile PDS answers (own lists)"]
    hostile = rows[1]
    assert hostile[-1] == "ok"
    # owners, did:plc and did:web users (first-time, returning), misses: all right
    first, last = API_COLUMNS.index("legit ok"), API_COLUMNS.index("misses")
    for cell in hostile[first : last + 1]:
        done, asked = cell.split("/")
        assert done == asked, hostile
        assert int(asked) > 0, hostile
    # each hostile record read once: its refusal remembered for the rest of the phase
    assert hostile[API_COLUMNS.index("PDS reqs")] == "3/3"


def test_a_row_it_does_not_know_is_refused_with_a_clear_error() -> None:
    result = bench("--only", "no_such_row", timeout=60)
    assert result.returncode == 2
    assert "no row named no_such_row" in result.stderr
