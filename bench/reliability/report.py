"""the reliability report: every fault scenario at full size, as one table.

    uv run python -m bench.reliability.report            # >= 5,000 frames, 200 playlists
    uv run python -m bench.reliability.report --size ci  # the CI suite's small world
    uv run python -m bench.reliability.report --only redis --only worker

each row is one scenario of `bench.reliability.scenarios` run through
fresh real parts (redis-server, PostgreSQL, the turbopuffer-speaking server,
the Jetstream replay server, the consumer, the worker, the API) and judged by
`bench.reliability.check` against the fault-free run (the first row):

- events: frames delivered (faulty deliveries included)
- faults: drops, refusals, outages, faulted turbopuffer requests, tasks in the
  hand of the killed worker, or frames delivered out of order / twice
- lost: playlists whose last event had no effect (a live one's final version
  not cached, a deleted one's entries still there)
- wrong: cache entries that differ from the fault-free run (or, for versions
  the fault-free run did not compute, from the engine on the healthy world),
  entries of versions that never existed, a state naming an older version
- asked: requests the API answered in the run: every live playlist in turn, ~20
  a second while the run went on, and each once more after it
- 5xx: how many of those were a 5xx
- recover: from the fault's end to the cache matching the fault-free run. the
  rest of the stream is included (the stream is paced: ~23 s at full size), so
  a fault ending early shows most of the stream here; a fault lasting the whole
  stream, or a faulty delivery, ends when the stream is consumed
- settle: from the last frame consumed to the cache matching: how far behind
  the stream the service ended up

(a "later than the fault-free run" column was tried and dropped: the reference
run is the world's first, cold, and some scenarios run the worker in its own
process, so the differences measured the harness, not the fault.)

the harness is this package (`bench.reliability`); the tests run it at
CI size (tests/test_reliability_faults.py).
"""

from __future__ import annotations

import os

# small matrices: BLAS threads cost more than they save (as in worker/cli.py); set
# before NumPy is first imported
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.reliability.scenarios import (
    Durations,
    Outcome,
    run_scenario,
    scenarios,
)
from bench.reliability.world import CI_SIZE, FULL_SIZE, World, WorldSize

FULL_DURATIONS = Durations(outage=3.0, stall=3.0, refusing=3.0, turbopuffer=3.0, within=300.0)
CI_DURATIONS = Durations(outage=1.0, stall=1.0, refusing=1.0, turbopuffer=1.0, within=60.0)
COLUMNS = ("scenario", "events", "faults", "lost", "wrong", "asked", "5xx", "recover", "settle")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def row(outcome: Outcome) -> tuple[str, ...]:
    errors = str(outcome.server_errors)
    if outcome.server_errors:
        errors += " (" + ", ".join(str(s) for s in sorted(outcome.statuses) if s >= 500) + ")"
    return (
        outcome.scenario,
        str(outcome.events),
        str(outcome.faults),
        str(outcome.lost),
        str(outcome.wrong),
        str(sum(outcome.statuses.values())),
        errors,
        _seconds(outcome.recover_seconds),
        _seconds(outcome.settle_seconds),
    )


def render(rows: Sequence[tuple[str, ...]]) -> str:
    """a Markdown table (it reads as plain text too)."""
    widths = [max(len(cells[i]) for cells in (COLUMNS, *rows)) for i in range(len(COLUMNS))]

    def line(cells: Sequence[str]) -> str:
        padded = (
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join(
            "-" * (width + 2) if i == 0 else "-" * (width + 1) + ":"
            for i, width in enumerate(widths)
        )
        + "|"
    )
    return "\n".join([line(COLUMNS), rule, *(line(cells) for cells in rows)])


async def report(size: WorldSize, durations: Durations, only: Sequence[str]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="plyr-reliability-") as directory:
        world = World(size, Path(directory))
        started = time.monotonic()
        await world.start()
        assert world.stream is not None
        print(
            f"world: {size.tracks} tracks, {len(world.stream.playlists)} playlists, "
            f"{len(world.stream.frames)} frames at {size.frames_per_second:.0f}/s "
            f"(ready in {time.monotonic() - started:.1f} s)",
            flush=True,
        )
        try:
            for scenario in scenarios(size.frames):
                if outcomes and only and not any(word in scenario.name for word in only):
                    continue
                started = time.monotonic()
                outcome = await run_scenario(world, scenario, durations)
                outcomes.append(outcome)
                print(
                    f"  {scenario.name}: lost {outcome.lost}, wrong {outcome.wrong}, "
                    f"5xx {outcome.server_errors} ({time.monotonic() - started:.0f} s)",
                    flush=True,
                )
        finally:
            await world.close()
    return outcomes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reliability.report", description=__doc__)
    parser.add_argument("--size", choices=("full", "ci"), default="full")
    parser.add_argument(
        "--only", action="append", default=[], help="run only scenarios naming this (repeatable)"
    )
    args = parser.parse_args(argv)
    # the parts log their faults as they meet them; the report is the table
    logging.basicConfig(level=logging.CRITICAL)
    full = args.size == "full"
    size, durations = (FULL_SIZE, FULL_DURATIONS) if full else (CI_SIZE, CI_DURATIONS)
    outcomes = asyncio.run(report(size, durations, args.only))
    print()
    print(render([row(outcome) for outcome in outcomes]))
    clean = all(o.lost == 0 and o.wrong == 0 and o.api_mismatches == 0 for o in outcomes)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
