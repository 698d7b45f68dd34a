"""the host's speed, measured: a fixed piece of work timed in a process of its own.

this machine's speed was seen to change twofold from one hour to the next (the
same cold deploy's stand-ins took 9.0 s of CPU in one run, 18.6 s in another), and
a busy process on the other core costs a single thread up to half its speed. so a
CPU figure from one run says little beside one from another. the yardstick is the
same work every time, in the mix a worker does (the interpreter's own work on
tuples, dicts and strings, JSON both ways, many small NumPy calls, an event loop
switching between tasks). `Sampler` runs one round every few seconds in a process
of its own while a benchmark runs, under the same conditions as the work it
measures, and a benchmark reports its CPU figures also at `REFERENCE_MS`, the
yardstick's time on the development machine in one of its fast, quiet hours:

    at the reference speed = measured * REFERENCE_MS / median round

which is what a figure would have been on that machine then, comparable across
hours (and with the issue's goals, set on that machine). the yardstick moves with
the host only as far as its mix resembles the measured work: report both.

`python -m bench.yardstick` prints one measurement as JSON; `--every SECONDS`, a
round every SECONDS until stopped (what `Sampler` runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import orjson

# the yardstick's median CPU ms on the development machine (2 cores, 2026-12-03 20:48
# UTC, a fast hour: `python -m bench.yardstick` five times, 73.7-74.2 ms); a constant,
# never re-measured by a run, so every figure "at the reference speed" is on one scale
REFERENCE_MS: Final = 74.0
ROUNDS: Final = 5  # the work is done this many times in the process; the median is kept
SPREAD_WARNING: Final = 0.25  # rounds differing more: the host changed speed


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


SAMPLE_EVERY_SECONDS: Final = 5.0  # the sampler's pace: ~2 % of one core at 100 ms a round


class Sampler:
    """the yardstick, one round every `every` seconds in a process of its own, for as
    long as the block runs: the host's speed under the same conditions as the work
    measured meanwhile (a yardstick taken only before and after a run was seen to
    read 141 ms where the run's own conditions gave 77: another process was busy on
    the other core at those two moments, which costs a single thread up to half its
    speed on this machine)."""

    def __init__(self, every: float = SAMPLE_EVERY_SECONDS) -> None:
        self.every = every
        self.samples: list[float] = []
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Sampler:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.yardstick",
            "--every",
            f"{self.every:g}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        self._reader = asyncio.create_task(self._read(self._process))
        return self

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for line in process.stdout:
            value = orjson.loads(line).get("ms")
            if isinstance(value, float) and value > 0:
                self.samples.append(value)

    async def __aexit__(self, *_: object) -> None:
        process, reader = self._process, self._reader
        if process is not None and process.returncode is None:
            process.terminate()
            await process.wait()
        if reader is not None:
            await reader

    def host(self) -> HostSpeed:
        if not self.samples:
            raise RuntimeError("the yardstick's sampler took no sample")
        return HostSpeed(tuple(self.samples))


@dataclass(frozen=True)
class HostSpeed:
    """the yardstick's rounds taken during a benchmark's run."""

    samples: tuple[float, ...]

    @property
    def ms(self) -> float:
        """the median round: the run's speed."""
        return statistics.median(self.samples)

    @property
    def spread(self) -> float:
        """the slowest round over the fastest, minus one: how far the speed moved."""
        return max(self.samples) / min(self.samples) - 1

    def at_reference(self, cpu: float) -> float:
        """a CPU figure measured during the run, at the reference speed."""
        return cpu * REFERENCE_MS / self.ms

    def line(self) -> str:
        moved = (
            f"; its speed moved by more than {SPREAD_WARNING:.0%} during the run: compare with care"
            if self.spread > SPREAD_WARNING
            else ""
        )
        return (
            f"yardstick (bench.yardstick): median {self.ms:.1f} ms over {len(self.samples)} "
            f"rounds during the run ({min(self.samples):.1f}-{max(self.samples):.1f}); "
            f"reference {REFERENCE_MS:.1f} ms, so this host ran at "
            f"{REFERENCE_MS / self.ms:.2f}x the reference speed{moved}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "samples_ms": list(self.samples),
            "median_ms": self.ms,
            "reference_ms": REFERENCE_MS,
            "speed": REFERENCE_MS / self.ms,
        }


def main(argv: list[str]) -> None:
    """`python -m bench.yardstick [ROUNDS]`: one measurement (the median of ROUNDS);
    `--every SECONDS`: one round every SECONDS, a line each, until stopped."""
    if argv[:1] == ["--every"]:
        every = float(argv[1]) if len(argv) > 1 else SAMPLE_EVERY_SECONDS
        if not 0.1 <= every <= 600:
            raise SystemExit("--every must be within 0.1..600 seconds")
        one_round()  # warm: the first round pays for imports and caches
        while True:
            line = orjson.dumps({"ms": one_round() * 1e3}).decode() + "\n"
            sys.stdout.write(line)
            sys.stdout.flush()
            time.sleep(every)
    rounds = int(argv[0]) if argv else ROUNDS
    if not 1 <= rounds <= 50:
        raise SystemExit("rounds must be within 1..50")
    sys.stdout.write(orjson.dumps({"ms": median_ms(rounds)}).decode() + "\n")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        main(sys.argv[1:])
