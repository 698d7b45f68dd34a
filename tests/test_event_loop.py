"""the loop the worker, the consumer and the embedded mode run on (`EVENT_LOOP`)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import uvloop

from tests.support.embedded_run import run_until_idle
from worker.processes.event_loop import run
from worker.settings import Settings


async def _loop_type() -> type[asyncio.AbstractEventLoop]:
    return type(asyncio.get_running_loop())


def test_uvloop_is_the_default_and_runs_the_coroutine() -> None:
    assert Settings().event_loop == "uvloop"
    assert run(_loop_type(), loop="uvloop") is uvloop.Loop


def test_asyncio_s_loop_when_asked_for() -> None:
    loop_type = run(_loop_type(), loop="asyncio")
    assert loop_type is not uvloop.Loop
    assert issubclass(loop_type, asyncio.BaseEventLoop)


def test_a_loop_that_does_not_exist_is_refused_in_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "worker", "worker"],
        env={"EVENT_LOOP": "trio", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "EVENT_LOOP='trio' is refused" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_embedded_service_runs_on_asyncio_s_loop_too(tmp_path: Path) -> None:
    # the default (uvloop) runs in every other test of `plyr-recs run`
    done, summary = run_until_idle(tmp_path, {"EVENT_LOOP": "asyncio", "PATH": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    assert summary is not None
    assert summary["reason"] == "idle"
    assert any(not playlist["deleted"] for playlist in summary["playlists"])
