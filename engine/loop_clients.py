"""one client per event loop, for clients over an aiohttp session (the turbopuffer
store's, the PDS reader's).

an aiohttp session belongs to the event loop it was opened in, and the worker and
the API may run in different loops (the embedded mode runs several), so a client
is opened on first use in each loop and reused there. the clients of loops that
closed since are dropped when another is opened (their sockets went with their
loop). `aclose` closes them all, each in its own loop: this one's at once, a
running loop's through that loop (waited for at most `close_seconds`); a stopped
loop's cannot be, and is logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

_Client = TypeVar("_Client")


class LoopClients(Generic[_Client]):
    """the clients `open_client` opened, one per event loop; `close_client` closes one."""

    def __init__(
        self,
        open_client: Callable[[], _Client],
        close_client: Callable[[_Client], Awaitable[None]],
        *,
        what: str,
        close_seconds: float,
    ) -> None:
        self._open = open_client
        self._close = close_client
        self._what = what  # for the logs: "turbopuffer client", ...
        self._close_seconds = close_seconds
        self._clients: dict[asyncio.AbstractEventLoop, _Client] = {}

    def __len__(self) -> int:
        """how many event loops hold an open client."""
        return len(self._clients)

    def values(self) -> list[_Client]:
        return list(self._clients.values())

    def current(self) -> _Client:
        """this event loop's client, opened on first use."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            for stale in [other for other in self._clients if other.is_closed()]:
                del self._clients[stale]  # its sockets went with its loop
            client = self._clients[loop] = self._open()
        return client

    async def aclose(self) -> None:
        """close every client opened; safe to call twice."""
        current = asyncio.get_running_loop()
        clients, self._clients = self._clients, {}
        for loop, client in clients.items():
            if loop is current:
                await self._close(client)
            elif loop.is_running():
                # an aiohttp session must be closed in its own loop
                future = asyncio.run_coroutine_threadsafe(_awaited(self._close(client)), loop)
                try:
                    await asyncio.wait_for(asyncio.wrap_future(future), self._close_seconds)
                except TimeoutError:
                    log.warning("%s of another event loop did not close in time", self._what)
            else:
                log.warning("%s of a stopped event loop left unclosed", self._what)


async def _awaited(closing: Awaitable[None]) -> None:
    await closing  # run_coroutine_threadsafe takes a coroutine, not any awaitable
