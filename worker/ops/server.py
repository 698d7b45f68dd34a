"""the small HTTP server of a process that serves no HTTP of its own (the worker, the
consumer), and of the API when its metrics are kept off the public port.

    GET /metrics        Prometheus text (the process's registry, refreshed first)
    GET /health         200 while the process serves, each dependency's state
    GET /health/live    200, touching nothing
    GET /health/ready   the /health report; 503 while a dependency is down

on METRICS_HOST:METRICS_PORT, never public (fly.toml gives it no service; Fly's
scraper and checks reach it on the private network). aiohttp rather than a second
uvicorn: it runs inside the process's own loop without taking its signal handlers.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from worker.ops.probes import Readiness
from worker.wiring import ConfigurationError

logger = logging.getLogger(__name__)

Render = Callable[[], Awaitable[bytes]]
Extra = Callable[[], dict[str, Any]]


class OpsServer:
    """`async with OpsServer(...)`: serving from entry to exit."""

    def __init__(
        self,
        *,
        process: str,
        host: str,
        port: int,
        render: Render,
        readiness: Readiness,
        extra: Extra | None = None,
    ) -> None:
        self.process = process
        self.host = host
        self.port = port
        self._render = render
        self._readiness = readiness
        self._extra = extra
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> OpsServer:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/health", self._health)
        app.router.add_get("/health/live", self._live)
        app.router.add_get("/health/ready", self._ready)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as error:
            await runner.cleanup()
            why = "is in use" if error.errno == errno.EADDRINUSE else f"cannot be bound ({error})"
            raise ConfigurationError(
                f"METRICS_PORT={self.port} on METRICS_HOST={self.host} {why}: set METRICS_PORT "
                "to a free port (each process on one machine needs its own), or 0 for none."
            ) from None
        self._runner = runner
        logger.info("%s: /metrics and /health on %s:%d", self.process, self.host, self.port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        await self._readiness.aclose()

    async def _metrics(self, _: web.Request) -> web.Response:
        body = await self._render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _report(self) -> tuple[bool, dict[str, Any]]:
        checks = await self._readiness.report()
        ready = all(state == "ok" for state in checks.values())
        report: dict[str, Any] = {
            "status": "ok" if ready else "degraded",
            "process": self.process,
            **checks,
        }
        if self._extra is not None:
            report.update(self._extra())
        return ready, report

    async def _health(self, request: web.Request) -> web.Response:
        _, report = await self._report()
        return web.json_response(report)

    async def _live(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _ready(self, _: web.Request) -> web.Response:
        ready, report = await self._report()
        return web.json_response(report, status=200 if ready else 503)
