"""how often a worker looks for work (`WORKER_CHECK_SECONDS`): docket sleeps this long
with every slot busy before it looks again, so its own 0.25 s capped a busy worker
at WORKER_CONCURRENCY / 0.25 recomputes a second. the setting reaches the worker
`plyr-recs worker` and `plyr-recs run` build, and a bad one is refused by name."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from docket import Docket
from pydantic import ValidationError

from worker.processes.worker import CHECK_INTERVAL, build_worker, configured_worker
from worker.settings import Settings


async def test_the_setting_reaches_the_worker_the_processes_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WORKER_CHECK_SECONDS", "0.02")
    monkeypatch.setenv("WORKER_CONCURRENCY", "3")
    settings = Settings(_env_file=None)
    async with Docket(name=f"test-{uuid.uuid4().hex[:8]}", url="memory://") as docket:
        worker = configured_worker(docket, settings)
        assert worker.minimum_check_interval == timedelta(milliseconds=20)
        assert worker.concurrency == 3
        # the tests' and benchmarks' workers look as often as production's default
        assert build_worker(docket, concurrency=1).minimum_check_interval == CHECK_INTERVAL


def test_the_default_is_below_docket_s_own() -> None:
    default = Settings(_env_file=None).worker_check_seconds
    assert timedelta(seconds=default) == CHECK_INTERVAL < timedelta(milliseconds=250)


@pytest.mark.parametrize("value", ["0", "0.001", "6", "soon"])
def test_a_bad_value_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("WORKER_CHECK_SECONDS", value)
    with pytest.raises(ValidationError, match="worker_check_seconds"):
        Settings(_env_file=None)
