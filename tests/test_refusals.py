"""every bad setting, refused URL or unreachable dependency: one line naming the setting,
exit status 2, no traceback, in every command (`plyr-recs ...` as an operator runs it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.loopback.servers import RedisServer
from worker.cli import MIN_DEMO_PLAYLISTS, MIN_DEMO_TRACKS
from worker.demo.session import MIN_PLAYLISTS

PLYR_RECS = str(Path(sys.executable).with_name("plyr-recs"))
SETTINGS = [
    "API_PORT",
    "WORKER_CONCURRENCY",
    "FUSION_MODE",
    "REDIS_URL",
    "DOCKET_URL",
    "DATABASE_URL",
    "JETSTREAM_URL",
    "JETSTREAM_URLS",
    "LOG_LEVEL",
    "TURBOPUFFER_API_KEY",
    "TURBOPUFFER_BASE_URL",
]
SHARED = {"DOCKET_URL": "redis://127.0.0.1:1/0", "STARTUP_WAIT_SECONDS": "0"}


def run(
    command: list[str], environment: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    clean = {name: value for name, value in os.environ.items() if name not in SETTINGS}
    return subprocess.run(
        [PLYR_RECS, *command],
        env={**clean, **environment},
        cwd=cwd,  # no .env of the repository
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_refused(result: subprocess.CompletedProcess[str], command: str, *words: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    line = lines[0]
    assert line.startswith(f"plyr-recs {command}: "), line
    for word in words:
        assert word in line, line
    return line


@pytest.mark.parametrize(
    ("command", "environment", "words"),
    [
        (["api"], {"API_PORT": "abc"}, ["API_PORT='abc'", "valid integer", "8000"]),
        (["worker"], {"WORKER_CONCURRENCY": "0"}, ["WORKER_CONCURRENCY='0'", "default, 10"]),
        (["run", "--for", "1"], {"FUSION_MODE": "foo"}, ["FUSION_MODE='foo'", "'rrf'"]),
        (["status"], {"REDIS_URL": "localhost:6379"}, ["REDIS_URL", "redis://host:6379/0"]),
        (["worker"], {"REDIS_URL": "localhost:6379"}, ["REDIS_URL", "not a redis://"]),
        (["warm"], {"DOCKET_URL": "127.0.0.1:6379"}, ["DOCKET_URL", "not a redis://"]),
        (["jetstream"], {"JETSTREAM_URL": "not a url"}, ["JETSTREAM_URL", "wss://"]),
        (
            ["jetstream"],
            {"JETSTREAM_URLS": "wss://a.example/subscribe, https://b.example/subscribe"},
            ["JETSTREAM_URLS (entry 2)", "https://b.example"],
        ),
        (["jetstream"], {"JETSTREAM_URLS": "wss://:99999/x"}, ["JETSTREAM_URLS (entry 1)"]),
        (["api"], {"DATABASE_URL": "mysql://u:hunter2@db/plyr"}, ["DATABASE_URL", "u:***@"]),
        (["warm"], {"LOG_LEVEL": "LOUD"}, ["LOG_LEVEL='LOUD'", "'DEBUG'"]),
        (["worker"], {"LOG_FORMAT": "xml"}, ["LOG_FORMAT='xml'", "'json'"]),
        (["api"], {"TURBOPUFFER_BASE_URL": "turbopuffer.local"}, ["TURBOPUFFER_BASE_URL"]),
    ],
)
def test_a_bad_setting_is_one_line_and_status_2(
    command: list[str], environment: dict[str, str], words: list[str], tmp_path: Path
) -> None:
    line = assert_refused(run(command, {**SHARED, **environment}, tmp_path), command[0], *words)
    assert "hunter2" not in line


@pytest.mark.parametrize("command", ["worker", "jetstream", "api", "warm", "status"])
def test_an_unreachable_redis_is_named_with_its_password_redacted(
    command: str, tmp_path: Path
) -> None:
    url = "redis://:hunter2@127.0.0.1:1/0"
    environment = {**SHARED, "REDIS_URL": url, "DOCKET_URL": url}
    if command in ("worker", "api", "warm"):
        environment["DATABASE_URL"] = "postgresql://u@127.0.0.1:1/plyr"
    line = assert_refused(run([command], environment, tmp_path), command, "REDIS_URL")
    assert "redis://:***@127.0.0.1:1/0" in line
    assert "hunter2" not in line


@pytest.mark.integration
@pytest.mark.parametrize("command", ["worker", "api", "warm"])
def test_an_unreachable_database_is_named_after_a_bounded_wait(
    command: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    """before: `plyr-recs worker` printed 100 lines of asyncpg traceback."""
    environment = {
        "REDIS_URL": redis_server.url,
        "DOCKET_URL": redis_server.url,
        "DATABASE_URL": "postgresql://plyr:hunter2@127.0.0.1:1/plyr",
        "STARTUP_WAIT_SECONDS": "1.5",
    }
    result = run([command], environment, tmp_path)
    # the wait said what it waits for (one log line), then the refusal
    waiting, _ = result.stderr.strip().split("\n", 1)
    assert "waiting up to 1.5 s for DATABASE_URL" in waiting
    result.stderr = result.stderr.split("\n", 1)[1]
    line = assert_refused(result, command, "DATABASE_URL", "did not answer within 1.5 s")
    assert "postgresql://plyr:***@127.0.0.1:1/plyr" in line
    assert "hunter2" not in result.stderr


@pytest.mark.parametrize(
    ("option", "value"), [("--playlists", "4"), ("--tracks", "100"), ("--artists", "300")]
)
def test_run_refuses_what_its_help_refuses(option: str, value: str, tmp_path: Path) -> None:
    """before: --playlists 4 and --tracks 100 were inside --help's bounds and ended in a
    ValueError traceback."""
    arguments = ["run", "--for", "1", option, value]
    if option == "--artists":
        arguments += ["--tracks", "250"]
    result = run(arguments, {}, tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert option in result.stderr


def test_the_help_bounds_are_the_demo_bounds() -> None:
    assert MIN_DEMO_PLAYLISTS == MIN_PLAYLISTS
    from worker.processes.run import DEMO_REGIONS

    assert MIN_DEMO_TRACKS == DEMO_REGIONS * 10


def test_no_flag_shows_a_type_label(tmp_path: Path) -> None:
    for command in ("run", "warm"):
        result = run([command, "--help"], {"COLUMNS": "200"}, tmp_path)
        assert result.returncode == 0
        for label in ("<int", "<float", "<path>", "INTEGER", "FLOAT"):
            options = result.stdout.split("Options", 1)[1]
            body = options.replace("--help", "").split("Show this message")[0]
            assert label not in body, (command, label)
