"""`plyr-recs run` as a subprocess with its editor page, and Debian's chromium driven by
Playwright (it cannot download browsers of its own here: the system one is launched).

used by tests/test_editor_page.py, and through it by scripts/editor-screenshot.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EDITOR_LINE = re.compile(r"the playlist editor: (http://127\.0\.0\.1:\d+)/")
TOKEN_LINE = re.compile(r"X-Internal-Token: ([A-Za-z0-9_-]+)")
RUN = [sys.executable, "-m", "worker", "run", "--tracks", "2000"]
SPACING_MS = 20  # the session's frames come fast: it is replayed in about a second
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


@dataclass
class RunningDemo:
    """a `plyr-recs run` with its page: where it is, and what it printed."""

    base_url: str
    token: str
    process: subprocess.Popen[bytes]
    output: Path

    def api(self, path: str) -> Any:
        response = httpx.get(f"{self.base_url}/editor/api{path}", timeout=10)
        response.raise_for_status()
        return response.json()

    def printed(self) -> str:
        return self.output.read_text(errors="replace")


def _environment(tmp: Path) -> dict[str, str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(
            ("REDIS_", "DOCKET_", "DATABASE_", "TURBOPUFFER_", "JETSTREAM_", "API_", "INTERNAL_")
        )
    }
    return environment | {
        "XDG_CACHE_HOME": str(tmp / "cache"),
        "DEBOUNCE_SECONDS": "0.3",
        "API_PORT": "0",  # a free port; the run prints the page's address
        "COLUMNS": "160",
    }


def _wait_for(demo_output: Path, process: subprocess.Popen[bytes]) -> tuple[str, str]:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        printed = demo_output.read_text(errors="replace")
        page, token = EDITOR_LINE.search(printed), TOKEN_LINE.search(printed)
        if page and token:
            return page.group(1), token.group(1)
        if process.poll() is not None:
            raise RuntimeError(f"plyr-recs run ended ({process.returncode}):\n{printed[-3000:]}")
        time.sleep(0.1)
    raise TimeoutError("plyr-recs run did not print the editor's address")


@contextmanager
def running_demo(
    tmp: Path, *, playlists: int = 6, spacing_ms: float = SPACING_MS, replayed: bool = True
) -> Iterator[RunningDemo]:
    """`plyr-recs run` on a small demo, once its session is replayed (`replayed`) or as soon
    as it answers; stopped by SIGINT (as a person stops it) at the end, which must end it
    cleanly."""
    output = tmp / "run.out"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [*RUN, "--playlists", str(playlists), "--spacing-ms", str(spacing_ms)],
            cwd=tmp,
            env=_environment(tmp),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        base_url, token = _wait_for(output, process)
        demo = RunningDemo(base_url, token, process, output)
        deadline = time.monotonic() + START_TIMEOUT
        while replayed and not demo.api("/status")["session"]["done"]:
            if time.monotonic() > deadline:
                raise TimeoutError("the demo session did not finish replaying")
            time.sleep(0.1)
        yield demo
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    if process.returncode != 0:
        raise RuntimeError(
            f"plyr-recs run exited {process.returncode}:\n{output.read_text()[-3000:]}"
        )


@contextmanager
def chromium(profile: Path, **context: Any) -> Iterator[Any]:
    """a browser context of the system chromium on a fresh profile directory."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            **context,
        )
        try:
            yield browser
        finally:
            browser.close()
