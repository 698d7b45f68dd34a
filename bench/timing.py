"""how the benchmarks time CPU-bound work: best of several rounds of CPU time."""

from __future__ import annotations

import time
from collections.abc import Callable


def cpu_rate(run: Callable[[], object], count: int, rounds: int = 5) -> float:
    """items per CPU-second of `run` (which handles `count` items): the best of `rounds`,
    the one least disturbed by neighbours on a shared machine."""
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        run()
        best = min(best, time.process_time() - started)
    return count / best if best > 0 else float("inf")
