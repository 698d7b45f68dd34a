"""the processes' logging: a task's deliberate docket retry (the worker waiting for
plyr.fm to ingest a playlist) is not an ERROR with a traceback; a fault still is.
found by the soak (`bench.load.soak`): every wait logged a traceback at ERROR."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from docket import Docket, Retry, Worker

from worker.processes.logs import configure_logging

QUIETED = ("docket", "docket.dependencies", "httpx", "httpx2")


@pytest.fixture
def configured() -> Iterator[None]:
    """configure_logging as a process would, and put the loggers back afterwards."""
    loggers = [logging.getLogger(name) for name in QUIETED]
    saved = [(logger.level, list(logger.filters)) for logger in loggers]
    configure_logging()
    yield
    for logger, (level, filters) in zip(loggers, saved, strict=True):
        logger.setLevel(level)
        logger.filters[:] = filters


async def waits_for_ingest(retry: Retry = Retry(attempts=2)) -> None:
    if retry.attempt == 1:
        retry.after(timedelta(0))  # as recompute_playlist does for an unknown playlist


async def meets_a_fault(retry: Retry = Retry(attempts=2)) -> None:
    raise ConnectionError("refused")


@pytest.mark.usefixtures("configured")
async def test_a_deliberate_retry_is_info_without_traceback_and_a_fault_stays_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)  # the root logger at LOG_LEVEL=INFO, as in production
    async with Docket(name=f"logs-{uuid.uuid4().hex[:8]}", url="memory://logs") as docket:
        for task in (waits_for_ingest, meets_a_fault):
            docket.register(task)
            await docket.add(task)()
        async with Worker(docket, schedule_automatic_tasks=False) as worker:
            await worker.run_until_finished()

    retries = [r for r in caplog.records if r.name == "docket.dependencies"]
    waited = [r for r in retries if "waits_for_ingest" in r.getMessage()]
    faulted = [r for r in retries if "meets_a_fault" in r.getMessage()]
    assert [(r.levelno, r.exc_info) for r in waited] == [(logging.INFO, None)]
    assert faulted, "the fault's retry is still logged"
    assert all(r.levelno == logging.ERROR and r.exc_info is not None for r in faulted)


@pytest.mark.usefixtures("configured")
def test_http_clients_do_not_log_every_request() -> None:
    # httpx2 (under turbopuffer) logs a line per request at INFO
    assert not logging.getLogger("httpx2").isEnabledFor(logging.INFO)
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    assert logging.getLogger("httpx2").isEnabledFor(logging.WARNING)


def test_log_format_json_writes_one_object_a_line_from_the_real_command(tmp_path: Path) -> None:
    """LOG_FORMAT=json: every log line of the process is a JSON object (here the start-up
    wait's warning), the refusal that ends it stays the one plain line on stderr."""
    environment = {
        **os.environ,
        "LOG_FORMAT": "json",
        "REDIS_URL": "redis://:hunter2@127.0.0.1:1/0",
        "DOCKET_URL": "redis://127.0.0.1:1/0",
        "STARTUP_WAIT_SECONDS": "1.5",
    }
    result = subprocess.run(
        [str(Path(sys.executable).with_name("plyr-recs")), "jetstream"],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    *logged, refusal = result.stderr.strip().splitlines()
    assert result.returncode == 2
    assert refusal.startswith("plyr-recs jetstream: REDIS_URL")
    entries = [json.loads(line) for line in logged]
    assert entries
    assert entries[0]["level"] == "WARNING"
    assert entries[0]["logger"] == "worker.processes.waiting"
    assert "redis://:***@127.0.0.1:1/0" in entries[0]["message"]
    assert "hunter2" not in result.stderr
