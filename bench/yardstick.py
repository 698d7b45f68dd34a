"""the host's speed, measured: a fixed piece of work timed in a fresh interpreter.

this machine's speed was seen to change twofold from one hour to the next (the
same cold deploy's stand-ins took 9.0 s of CPU in one run, 18.6 s in another), so
a CPU figure from one hour says little beside one from another. the yardstick is
the same work every time, in the mix a worker does (the interpreter's own work on
dicts, lists and strings, JSON both ways, many small NumPy calls, an event loop
switching between tasks), run in a process of its own so the benchmark's state
does not weigh on it. a benchmark measures it before and after its own run and
reports its CPU figures also at `REFERENCE_MS`, the yardstick's time on the
development machine in one of its fast hours:

    at the reference speed = measured * REFERENCE_MS / yardstick

which is what a figure would have been on that machine at that speed, comparable
across hours (and with the issue's goals, set on that machine). the yardstick
moves with the host only as far as its mix resembles the measured work: report
both, and its drift between before and after (a host that changed speed in the
middle of a run shows there).

`python -m bench.yardstick` prints one measurement as JSON (what `measure` runs).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Final

import numpy as np
import orjson

# the yardstick's median CPU ms on the development machine (2 cores, 2026-12-03 20:48
# UTC, a fast hour: `python -m bench.yardstick` five times, 73.7-74.2 ms); a constant,
# never re-measured by a run, so every figure "at the reference speed" is on one scale
REFERENCE_MS: Final = 74.0
ROUNDS: Final = 5  # the work is done this many times in the process; the median is kept
DRIFT_WARNING: Final = 0.15  # before and after differing more: the host changed speed


def _interpreter_work() -> int:
    """dicts, sets, lists and strings, the way request handling uses them."""
    total = 0
    for round_ in range(300):
        rows = [(i, f"track-{i}", i % 17) for i in range(100)]
        by_id = {track_id: (name, artist) for track_id, name, artist in rows}
        seen: set[int] = set()
        for track_id, name, artist in rows:
            if artist not in seen and track_id in by_id:
                seen.add(artist)
                total += len(name)
        total += len(sorted(rows, key=lambda r: (r[2], -r[0]))) + round_
    return total


def _json_work() -> int:
    """a turbopuffer-sized answer and a cache entry, through orjson and the stdlib."""
    answer = {"rows": [{"id": i, "$dist": i / 997.0} for i in range(115)]}
    total = 0
    for _ in range(200):
        parsed = orjson.loads(orjson.dumps(answer))
        total += len(parsed["rows"])
        total += len(json.dumps(parsed["rows"][:35]))
    return total


def _numpy_work() -> float:
    """many small calls on a playlist's 20 x 512 vectors, as the engine makes them."""
    rng = np.random.Generator(np.random.PCG64(7))
    points = rng.standard_normal((20, 512)).astype(np.float32)
    centroids = points[:3].copy()
    total = 0.0
    for _ in range(400):
        scores = points @ (centroids.T * np.float32(-2.0))
        scores += np.einsum("ij,ij->i", centroids, centroids)
        labels = scores.argmin(axis=1)
        counts = np.bincount(labels, minlength=3)
        total += float(counts.max()) + float(np.linalg.norm(points[labels == 0].sum(axis=0)))
    return total


async def _loop_work() -> int:
    """an event loop switching between many short tasks, futures and queues."""
    queue: asyncio.Queue[int] = asyncio.Queue()

    async def step(i: int) -> int:
        await asyncio.sleep(0)
        await queue.put(i)
        return i

    total = 0
    for _ in range(20):
        total += sum(await asyncio.gather(*(step(i) for i in range(200))))
        while not queue.empty():
            total += queue.get_nowait()
    return total


def one_round() -> float:
    """the CPU seconds of the work, once."""
    started = time.process_time()
    _interpreter_work()
    _json_work()
    _numpy_work()
    asyncio.run(_loop_work())
    return time.process_time() - started


def median_ms(rounds: int = ROUNDS) -> float:
    """the median of `rounds` rounds, in CPU milliseconds (the first warms up too)."""
    return statistics.median(one_round() for _ in range(rounds)) * 1e3


async def measure(rounds: int = ROUNDS) -> float:
    """the yardstick in a fresh interpreter: its median CPU ms."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.yardstick",
        str(rounds),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the yardstick failed: {err.decode(errors='replace')[-500:]}")
    value = orjson.loads(out)["ms"]
    if not isinstance(value, float) or value <= 0:
        raise RuntimeError(f"the yardstick printed {out!r:.200}")
    return value


@dataclass(frozen=True)
class HostSpeed:
    """the yardstick before and after a benchmark's run."""

    before_ms: float
    after_ms: float

    @property
    def ms(self) -> float:
        return (self.before_ms + self.after_ms) / 2

    @property
    def drift(self) -> float:
        """after over before, minus one: how far the host's speed moved during the run."""
        return self.after_ms / self.before_ms - 1

    def at_reference(self, cpu: float) -> float:
        """a CPU figure measured during the run, at the reference speed."""
        return cpu * REFERENCE_MS / self.ms

    def line(self) -> str:
        moved = (
            f"; the host changed speed during the run (beyond {DRIFT_WARNING:.0%}): "
            "compare with care"
            if abs(self.drift) > DRIFT_WARNING
            else ""
        )
        return (
            f"yardstick (bench.yardstick): {self.before_ms:.1f} ms before, "
            f"{self.after_ms:.1f} ms after ({self.drift:+.0%}); reference {REFERENCE_MS:.1f} ms, "
            f"so this host ran at {REFERENCE_MS / self.ms:.2f}x the reference speed{moved}"
        )

    def to_json(self) -> dict[str, float]:
        return {
            "before_ms": self.before_ms,
            "after_ms": self.after_ms,
            "reference_ms": REFERENCE_MS,
            "speed": REFERENCE_MS / self.ms,
        }


def main(argv: list[str]) -> None:
    rounds = int(argv[0]) if argv else ROUNDS
    if not 1 <= rounds <= 50:
        raise SystemExit("rounds must be within 1..50")
    sys.stdout.write(orjson.dumps({"ms": median_ms(rounds)}).decode() + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
