"""`plyr-recs run --until-idle` as a newcomer runs it: a subprocess in a fresh
directory, on a small world (2,000 tracks, edits 20 ms apart) so a test stays short,
with its own cache directory and a summary of what it did."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def run_until_idle(
    directory: Path, env: Mapping[str, str], *, timeout: float = 170
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any] | None]:
    """the finished process and its summary (None when it wrote none); `env` is the
    whole environment, to which the run's own settings are added."""
    summary_path = directory / "summary.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "worker",
            "run",
            "--until-idle",
            "--tracks",
            "2000",
            "--spacing-ms",
            "20",
            "--summary",
            str(summary_path),
        ],
        cwd=directory,
        env={
            **env,
            "XDG_CACHE_HOME": str(directory / "cache"),
            "DEBOUNCE_SECONDS": "0.3",
            "API_PORT": "0",
        },
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    return result, summary
