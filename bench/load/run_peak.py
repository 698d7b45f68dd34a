"""the peak memory of `plyr-recs run`, the whole service in one process on embedded
defaults (a generated catalogue of 20,000 tracks, an in-process Redis, docket on
memory://, the exact vector store, a replayed session), to the end of its session.

    uv run python -m bench.load.run_peak [--tracks 20000]

run twice on one catalogue directory: first cold (the catalogue is generated and
written to disk), then warm (read back from disk), as a first and a later start on a
fresh machine. the peak is the kernel's own account (ru_maxrss of the waited-for
child, the same figure as its VmHWM), so nothing is missed between two samples.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.load.stack import plyr_recs_command


@dataclass(frozen=True)
class RunPeak:
    start: str
    peak_mb: float
    seconds: float
    exit_code: int


def measure(cache_dir: Path, tracks: int, start: str) -> RunPeak:
    """one `plyr-recs run --until-idle`, its peak resident memory and wall time."""
    # only what the process needs to find its interpreter: the embedded defaults
    # apply when nothing (REDIS_URL, DATABASE_URL...) is set
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    command = [*plyr_recs_command(), "run", "--until-idle", "--tracks", str(tracks)]
    started = time.monotonic()
    process = subprocess.Popen(
        [*command, "--cache-dir", str(cache_dir)],
        env=env,
        cwd=cache_dir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return RunPeak(start, usage.ru_maxrss / 1024, time.monotonic() - started, process.returncode)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=20_000, help="demo catalogue size")
    arguments = parser.parse_args()
    console = Console(width=120)
    table = Table(title=f"plyr-recs run --until-idle, {arguments.tracks:,} tracks")
    for column in ("start", "peak RSS (ru_maxrss) MB", "wall s", "exit code"):
        table.add_column(column, justify="left" if column == "start" else "right")
    with tempfile.TemporaryDirectory(prefix="plyr-run-peak-") as directory:
        for start in ("cold: catalogue generated", "warm: catalogue from disk"):
            peak = measure(Path(directory), arguments.tracks, start)
            table.add_row(
                peak.start, f"{peak.peak_mb:.0f}", f"{peak.seconds:.1f}", str(peak.exit_code)
            )
    console.print(table)


if __name__ == "__main__":
    main()
