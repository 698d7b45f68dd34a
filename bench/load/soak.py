"""a soak: `plyr-recs jetstream` and `plyr-recs worker` on a long synthetic firehose,
their memory read every interval, and nothing lost at the end.

    uv run python -m bench.load.soak [--minutes 4] [--rate 1200] [--interval 15]

what runs (`bench.load.stack`): the production processes on a real redis-server
and PostgreSQL, the turbopuffer-speaking server, and a generated Jetstream sending
`--rate` frames per second for `--minutes` (so `rate * 60 * minutes` frames): the
creates of `--playlists` known playlists, then a blind host's mix
(`load_world.FIREHOSE`): edits of known playlists, list commits and deletes of
~50,000 playlists plyr.fm does not know, albums and liked lists, identity/account
events and other collections, malformed frames, and redeliveries of earlier frames.

reported every interval: frames the consumer has handled (its published counters),
the rate, each process's VmRSS and CPU share, the worker's finished tasks and
redis-server's memory. after the stream: how long the worker takes to leave every
known playlist's newest version in the cache (anything missing is lost). at the
end: RSS at the first and last samples, the growth over the second half of the
stream as a least-squares slope (MB per minute), each process's VmHWM (peak).
the first interval is warm-up (imports settle, pools fill, the allocator's arenas
grow): "start" is the first sample after it.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Final

from rich.console import Console
from rich.table import Table

from bench.load.stack import Memory, Stack, StackOptions
from bench.load.world import FIREHOSE, WorldSpec, latest_versions

FLAT_MB_PER_MINUTE: Final = 1.0  # the verdict's bound on the second half's slope
DRAIN_TIMEOUT_SECONDS: Final = 600.0
STREAM_GRACE: Final = 2.0  # the stream may take this many times its nominal length


@dataclass(frozen=True)
class Sample:
    seconds: float  # since the soak began
    phase: str  # "stream" or "drain"
    frames: int  # handled by the consumer so far
    rss_mb: dict[str, float]
    cpu_share: dict[str, float]  # of one core, since the previous sample
    worker_tasks: int
    stream_entries: int  # docket's stream: due tasks, superseded ones included
    scheduled: int  # docket's tasks waiting for their time (the debounce)
    redis_used_mb: float


@dataclass
class SoakReport:
    frames: int = 0
    samples: list[Sample] = field(default_factory=list)
    peaks: dict[str, Memory] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    consumer: dict[str, int] = field(default_factory=dict)
    edited_playlists: int = 0
    newest_cached: int = 0
    drain_seconds: float = float("nan")
    errors: dict[str, int] = field(default_factory=dict)
    exit_codes: dict[str, int | None] = field(default_factory=dict)

    def stream_samples(self) -> list[Sample]:
        return [s for s in self.samples if s.phase == "stream"]

    def slope_mb_per_minute(self, name: str) -> float:
        """least-squares slope of `name`'s RSS over the second half of the stream."""
        samples = self.stream_samples()
        half = samples[len(samples) // 2 :]
        if len(half) < 2:
            return float("nan")
        xs = [s.seconds / 60 for s in half]
        ys = [s.rss_mb[name] for s in half]
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        spread = sum((x - mean_x) ** 2 for x in xs)
        if spread == 0:
            return float("nan")
        return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread


class Sampler:
    """reads the stack's numbers into `report.samples`, printing a line each time."""

    def __init__(self, stack: Stack, report: SoakReport, console: Console) -> None:
        self.stack, self.report, self.console = stack, report, console
        self.started = time.monotonic()
        self._cpu = stack.cpu_seconds()
        self._at = self.started

    async def sample(self, phase: str) -> Sample:
        stack = self.stack
        assert stack.redis is not None
        stack.check_alive()
        now = time.monotonic()
        cpu = stack.cpu_seconds()
        span = max(now - self._at, 1e-9)
        memory = await stack.redis.info("memory")
        stream_entries, scheduled = await stack.queue_depth()
        sample = Sample(
            seconds=now - self.started,
            phase=phase,
            frames=(await stack.consumer_counts()).frames,
            rss_mb={p.name: p.memory().rss_mb for p in stack.service_processes()},
            cpu_share={name: (cpu[name] - self._cpu[name]) / span for name in cpu},
            worker_tasks=sum(stack.worker_outcomes().values()),
            stream_entries=stream_entries,
            scheduled=scheduled,
            redis_used_mb=int(memory["used_memory"]) / 2**20,
        )
        self._cpu, self._at = cpu, now
        previous = self.report.samples[-1] if self.report.samples else None
        self.report.samples.append(sample)
        self.console.print(_sample_line(sample, previous))
        return sample


async def soak(
    options: StackOptions, *, interval: float, nominal_seconds: float, console: Console
) -> SoakReport:
    """run the stream to its end, then let the worker drain; sample all along."""
    assert options.frames is not None
    report = SoakReport(frames=options.frames)
    async with Stack(options) as stack:
        if options.keep_logs:
            console.print(f"logs in {stack.directory}")
        sampler = Sampler(stack, report, console)
        deadline = sampler.started + nominal_seconds * STREAM_GRACE + 60
        while (await sampler.sample("stream")).frames < options.frames:
            if time.monotonic() > deadline:
                raise TimeoutError("the consumer did not read the whole stream in time")
            await asyncio.sleep(interval)

        newest = list(latest_versions(stack.stream, options.frames).values())
        report.edited_playlists = len(newest)
        drain_started = time.monotonic()
        while (cached := await stack.cached(newest)) < len(newest):
            if time.monotonic() - drain_started > DRAIN_TIMEOUT_SECONDS:
                break
            await asyncio.sleep(interval)
            await sampler.sample("drain")
        report.newest_cached = cached
        if cached == len(newest):
            report.drain_seconds = time.monotonic() - drain_started
        await sampler.sample("drain")

        report.peaks = {p.name: p.memory() for p in stack.service_processes()}
        report.outcomes = dict(stack.worker_outcomes())
        report.consumer = vars(await stack.consumer_counts())
        report.errors = stack.unexpected_errors()
    report.exit_codes = stack.exit_codes
    return report


def _sample_line(sample: Sample, previous: Sample | None) -> str:
    rate = ""
    if previous is not None and sample.seconds > previous.seconds:
        per_second = (sample.frames - previous.frames) / (sample.seconds - previous.seconds)
        rate = f"{per_second:,.0f}/s"
    processes = "  ".join(
        f"{name} {mb:.1f} MB {sample.cpu_share.get(name, 0.0):.0%}"
        for name, mb in sample.rss_mb.items()
    )
    shares = sample.cpu_share.items()
    helpers = " ".join(f"{name} {share:.0%}" for name, share in shares if name not in sample.rss_mb)
    return (
        f"{sample.phase:<6} t={sample.seconds:5.0f}s  frames {sample.frames:>8,} {rate:>7}  "
        f"{processes}  tasks {sample.worker_tasks:,} (queue {sample.stream_entries:,} due, "
        f"{sample.scheduled:,} later)  redis {sample.redis_used_mb:.0f} MB  "
        f"({helpers})"
    )


def print_report(console: Console, report: SoakReport) -> None:
    stream = report.stream_samples()
    first, last = stream[1 if len(stream) > 2 else 0], stream[-1]
    table = Table(title=f"soak: {report.frames:,} frames streamed in {last.seconds / 60:.1f} min")
    for column in (
        "process",
        f"RSS at {first.seconds:.0f}s MB",
        f"RSS at {last.seconds:.0f}s MB",
        "RSS after drain MB",
        "slope, 2nd half MB/min",
        "peak (VmHWM) MB",
    ):
        table.add_column(column, justify="left" if column == "process" else "right")
    for name, peak in report.peaks.items():
        table.add_row(
            f"plyr-recs {name}",
            f"{first.rss_mb[name]:.1f}",
            f"{last.rss_mb[name]:.1f}",
            f"{report.samples[-1].rss_mb[name]:.1f}",
            f"{report.slope_mb_per_minute(name):+.2f}",
            f"{peak.peak_mb:.1f}",
        )
    console.print(table)
    for name in report.peaks:
        slope = report.slope_mb_per_minute(name)
        verdict = "flat" if abs(slope) < FLAT_MB_PER_MINUTE else "GROWING"
        console.print(f"plyr-recs {name}: {verdict} (|slope| < {FLAT_MB_PER_MINUTE} MB/min)")
    lost = report.edited_playlists - report.newest_cached
    console.print(
        f"known playlists with their newest version cached: {report.newest_cached}/"
        f"{report.edited_playlists} (lost: {lost}); the worker drained in "
        f"{report.drain_seconds:.0f} s after the stream ended"
    )
    console.print(f"consumer counts: {report.consumer}")
    console.print(f"worker outcomes: {report.outcomes}")
    console.print(f"unexpected errors logged: {report.errors}; exit codes: {report.exit_codes}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=4.0, help="nominal length of the stream")
    parser.add_argument("--rate", type=float, default=1200.0, help="frames per second sent")
    parser.add_argument("--interval", type=float, default=15.0, help="seconds between samples")
    parser.add_argument("--playlists", type=int, default=2_000, help="playlists plyr.fm knows")
    parser.add_argument("--tracks", type=int, default=10_000, help="tracks in the catalogue")
    parser.add_argument(
        "--edits", type=float, default=FIREHOSE.edit, help="share of frames editing known playlists"
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs")
    arguments = parser.parse_args()
    seconds = arguments.minutes * 60
    options = StackOptions(
        world=WorldSpec(tracks=arguments.tracks, playlists=arguments.playlists),
        mix=dataclasses.replace(FIREHOSE, edit=arguments.edits),
        frames=arguments.playlists + int(arguments.rate * seconds),
        rate=arguments.rate,
        api=False,
        playlist_wait_seconds=2.0,
        keep_logs=arguments.keep_logs,
    )
    console = Console(width=160)
    console.print(
        f"soak: {options.frames:,} frames at {arguments.rate:,.0f}/s (~{arguments.minutes:g} "
        f"min); {arguments.playlists:,} known playlists, {arguments.tracks:,} tracks, "
        f"{arguments.edits:.1%} of frames edit them"
    )
    report = asyncio.run(
        soak(options, interval=arguments.interval, nominal_seconds=seconds, console=console)
    )
    print_report(console, report)


if __name__ == "__main__":
    main()
