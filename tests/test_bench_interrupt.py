"""a benchmark stopped by SIGTERM (`timeout`, a CI runner giving up) stops what it
started: no worker, stand-in or database is left running to skew the machine's next
figures (`bench/__main__.py` takes the signal as a Ctrl-C, so every cleanup runs)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent


def _session_processes(session: int) -> dict[int, str]:
    """the live processes of `session` (pid -> command line), zombies left out."""
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            command = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue  # gone meanwhile
        # the fields after the command's closing parenthesis: state, ppid, pgrp, session
        state, _, _, sid = stat.rpartition(")")[2].split()[:4]
        if int(sid) == session and state != "Z":
            found[int(entry)] = command.decode(errors="replace")
    return found


def _wait_for(predicate: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_a_terminated_benchmark_leaves_nothing_running() -> None:
    bench = subprocess.Popen(
        [sys.executable, "-m", "bench", "scale", "--playlists", "50", "--workers", "1"],
        cwd=REPOSITORY,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own session: everything it starts is found by it
    )
    try:
        started = _wait_for(
            lambda: any(
                "plyr-recs worker" in command for command in _session_processes(bench.pid).values()
            ),
            180,
        )
        assert started, "the benchmark never started its worker"
        assert len(_session_processes(bench.pid)) > 2  # the stand-ins and services too
        bench.send_signal(signal.SIGTERM)
        assert bench.wait(timeout=90) != 0  # stopped, not finished
        # only what it started is left to check: everything in its session
        left = _wait_for(lambda: not _session_processes(bench.pid), 30)
        assert left, f"left running: {_session_processes(bench.pid)}"
    finally:
        for pid in _session_processes(bench.pid):
            os.kill(pid, signal.SIGKILL)
