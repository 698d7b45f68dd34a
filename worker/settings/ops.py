"""operating every process: logs, metrics and health, traces, and the wait for
dependencies at start."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from worker.settings.base import Section


class OpsSettings(Section):
    title = "Operating every process"

    log_level: Annotated[
        Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        BeforeValidator(lambda value: value.upper() if isinstance(value, str) else value),
    ] = Field(default="INFO", description="the lowest level logged (any case).")
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="'text': one readable line per record; 'json': one JSON object per "
        "line (time, level, logger, message, exception) for a log pipeline. one format "
        "per process, docket's and uvicorn's records included.",
    )
    metrics_host: str = Field(
        default="127.0.0.1",
        description="address the worker's and the consumer's /metrics and /health server "
        "binds to (fly.toml: 0.0.0.0, reached on the private network only).",
    )
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = Field(
        default=0,
        description="port of /metrics (Prometheus text), /health, /health/live and "
        "/health/ready in `plyr-recs worker`, `plyr-recs jetstream` and `plyr-recs api` "
        "(fly.toml: 9091, the port Fly scrapes; the API's /metrics then leaves the public "
        "port). 0: no such server, and the API serves /metrics on API_PORT.",
    )
    startup_wait_seconds: Annotated[float, Field(ge=0, le=3600)] = Field(
        default=30.0,
        description="how long a process waits at start for the Redis and PostgreSQL it "
        "needs (a deploy may start it before them), saying which URL it waits for, before "
        "exiting with status 2.",
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        description="where traces go by OTLP/HTTP (a collector, or logfire's "
        "https://logfire-api.pydantic.dev with OTEL_EXPORTER_OTLP_HEADERS="
        "Authorization=<token>). Unset: no traces, and no cost.",
    )
    event_loop: Literal["uvloop", "asyncio"] = Field(
        default="uvloop",
        description="the event loop of `plyr-recs worker`, `jetstream` and `run`: 'uvloop' "
        "(its transports and scheduling in C; about a third of a worker's CPU was "
        "asyncio's own on a cold deploy) or 'asyncio', the standard library's. Without "
        "uvloop installed, asyncio's is used and the start-up log says so. The API runs "
        "on uvicorn's choice, uvloop when installed.",
    )
    health_store_check_seconds: Annotated[float, Field(ge=1, le=3600)] = Field(
        default=30.0,
        description="how long /health/ready reuses its answer on turbopuffer (one id "
        "lookup): a dead vector store shows within this, at one cheap request per "
        "interval and process.",
    )
