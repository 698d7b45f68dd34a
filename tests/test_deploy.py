"""fly.toml and the Dockerfile name only commands that exist."""

from __future__ import annotations

import shlex
import tomllib
from pathlib import Path

import typer.core
import typer.main
from typer.testing import CliRunner

from worker.cli import app

ROOT = Path(__file__).resolve().parents[1]


def fly() -> dict[str, object]:
    return tomllib.loads((ROOT / "fly.toml").read_text())


def subcommands() -> typer.core.TyperGroup:
    command = typer.main.get_command(app)
    assert isinstance(command, typer.core.TyperGroup)
    return command


def test_every_process_runs_a_real_plyr_recs_subcommand() -> None:
    processes = fly()["processes"]
    assert isinstance(processes, dict)
    assert set(processes) == {"api", "worker", "jetstream"}
    group = subcommands()
    runner = CliRunner()
    for name, command in processes.items():
        program, subcommand, *rest = shlex.split(command)
        assert program == "plyr-recs", name
        assert subcommand in group.commands, f"{name}: no `plyr-recs {subcommand}`"
        result = runner.invoke(app, [subcommand, *rest, "--help"])
        assert result.exit_code == 0, result.output


def test_only_the_api_serves_http_and_is_health_checked() -> None:
    service = fly()["http_service"]
    assert isinstance(service, dict)
    assert service["processes"] == ["api"]
    checks = service["checks"]
    assert isinstance(checks, list)
    assert checks[0]["path"] == "/health/ready"


def test_metrics_are_scraped_off_the_public_port_and_every_process_is_checked() -> None:
    """issue 22: no [metrics], /metrics public, no check of the worker or the consumer."""
    config = fly()
    env = config["env"]
    assert isinstance(env, dict)
    metrics = config["metrics"]
    assert isinstance(metrics, dict)
    assert (metrics["port"], metrics["path"]) == (int(env["METRICS_PORT"]), "/metrics")
    service = config["http_service"]
    assert isinstance(service, dict)
    assert service["internal_port"] != metrics["port"]
    checks = config["checks"]
    assert isinstance(checks, dict)
    checked = {process: check for check in checks.values() for process in check["processes"]}
    for process in ("worker", "jetstream"):
        assert checked[process]["path"] == "/health/ready"
        assert checked[process]["port"] == metrics["port"]


def test_worker_and_consumer_always_restart() -> None:
    restarts = fly()["restart"]
    assert isinstance(restarts, list)
    always = {p for r in restarts if r["policy"] == "always" for p in r["processes"]}
    assert {"worker", "jetstream"} <= always


def test_no_secret_sits_in_env() -> None:
    env = fly()["env"]
    assert isinstance(env, dict)
    secrets = {
        "REDIS_URL",
        "DOCKET_URL",
        "DATABASE_URL",
        "TURBOPUFFER_API_KEY",
        "INTERNAL_API_TOKEN",
    }
    assert not secrets & set(env)


def test_dockerfile_default_command_is_a_subcommand() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    cmd = next(line for line in reversed(lines) if line.startswith("CMD "))
    assert '"plyr-recs"' in cmd
    subcommand = cmd.split(",")[1].strip().strip('"] ')
    assert subcommand in subcommands().commands
