"""hosts that accept TCP and never finish a TLS handshake, on loopback.

`SilentTlsHost` accepts connections and reads whatever the client sends, answering
nothing: a TLS client waits for a ServerHello that never comes. `Rerouted` is an
httpcore network backend whose connections to one (public) address go to a loopback
port instead, so code that insists on public addresses (a did:web host, a PDS) can
be pointed at it: the TCP connect and the TLS handshake are real, only the route
differs; `Routes` does the same for several addresses, each to a port of its own.
used by tests/test_hardening_tls.py and `python -m bench abuse`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from types import TracebackType
from typing import Any

import httpcore


class SilentTlsHost:
    def __init__(self) -> None:
        self.accepted = 0
        self.open = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def __aenter__(self) -> SilentTlsHost:
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open += 1
        self._writers.add(writer)
        try:
            while await reader.read(4096):
                pass  # the ClientHello, read and never answered
        except ConnectionError:
            pass
        finally:
            self.open -= 1
            self._writers.discard(writer)
            writer.close()


class Routes(httpcore.AsyncNetworkBackend):
    """connections to each (public) address of `ports` go to 127.0.0.1 at its port;
    any other address to 127.0.0.1:`every_other` when it is given, else as it is."""

    def __init__(self, ports: dict[str, int], *, every_other: int | None = None) -> None:
        self._ports = dict(ports)
        self._every_other = every_other
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if host in self._ports:
            host, port = "127.0.0.1", self._ports[host]
        elif self._every_other is not None:
            host, port = "127.0.0.1", self._every_other
        return await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class Rerouted(Routes):
    """connections to `address` (every one, when None) go to 127.0.0.1:`port`."""

    def __init__(self, port: int, address: str | None = None) -> None:
        if address is None:
            super().__init__({}, every_other=port)
        else:
            super().__init__({address: port})
