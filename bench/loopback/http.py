"""what the loopback test servers share: aiohttp on 127.0.0.1, in the caller's event
loop (`async with`) or in a daemon thread with its own loop (`start_in_thread`),
for tests whose code under test runs on another loop.

a subclass adds its routes; handlers that stall wait on `self.stopping`, which
`stop` sets so that shutdown never waits for them.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Self

from aiohttp import web


class LoopbackHttpServer:
    """one aiohttp app on 127.0.0.1:`port` (0: the OS chooses, read back after start)."""

    port: int = 0
    client_max_size: int = 1024 * 1024  # aiohttp's default request-body bound
    thread_name: str = "loopback-http"
    stopping: asyncio.Event | None = None
    _runner: web.AppRunner | None = None
    _thread: threading.Thread | None = None
    _thread_loop: asyncio.AbstractEventLoop | None = None

    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=self.client_max_size)
        self.add_routes(app)
        self.stopping = asyncio.Event()
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self.stopping is not None:
            self.stopping.set()  # wake stalled handlers so shutdown does not wait on them
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    def start_in_thread(self) -> Self:
        """serve from a daemon thread with its own loop; `stop_thread` ends it."""
        loop = asyncio.new_event_loop()
        started = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self.start())
            started.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        self._thread_loop = loop
        self._thread = threading.Thread(target=serve, name=self.thread_name, daemon=True)
        self._thread.start()
        if not started.wait(timeout=10):
            raise TimeoutError(f"the {self.thread_name} thread did not start")
        return self

    def stop_thread(self) -> None:
        if self._thread is None or self._thread_loop is None:
            return
        self._thread_loop.call_soon_threadsafe(self._thread_loop.stop)
        self._thread.join(timeout=10)
        self._thread = None
        self._thread_loop = None
