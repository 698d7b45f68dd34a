"""`worker.ops.heap`: a worker's collector settings, in a process of their own (the
collector is the whole interpreter's: this one's is left as pytest has it)."""

from __future__ import annotations

import json
import subprocess
import sys

from worker.ops.heap import WORKER_YOUNG_THRESHOLD

PROBE = """
import gc, json
from worker.ops.heap import {call}
before = gc.get_threshold()
kept = [dict(n=n) for n in range(5000)]  # alive at start-up, held for good
{call}()
after, frozen = gc.get_threshold(), gc.get_freeze_count()
print(json.dumps({{"before": before, "after": after, "frozen": frozen}}))
"""


def settled(call: str) -> dict[str, list[int] | int]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(call=call)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result: dict[str, list[int] | int] = json.loads(done.stdout)
    return result


def test_a_worker_freezes_its_start_up_heap_and_collects_its_young_less_often() -> None:
    result = settled("settle_worker_heap")
    before, after = result["before"], result["after"]
    assert isinstance(before, list)
    assert after == [WORKER_YOUNG_THRESHOLD, before[1], before[2]]
    assert isinstance(result["frozen"], int)
    assert result["frozen"] >= 5000  # the held dicts among them


def test_the_api_freezes_its_heap_and_keeps_cpythons_thresholds() -> None:
    result = settled("freeze_startup_heap")
    assert result["after"] == result["before"]
    assert isinstance(result["frozen"], int)
    assert result["frozen"] >= 5000
