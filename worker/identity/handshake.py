"""connections to hosts that strangers name: the TLS handshake inside its own bound, and
the socket closed whenever a handshake does not finish.

a did:web host can accept TCP and never answer the ClientHello (a PDS too: the PDS
client, on aiohttp, bounds it as `worker.identity.pds.CONNECT_SECONDS`). the
request's deadline (an `asyncio.timeout` around the fetch) then cancels the
handshake, and httpcore closes the socket only when a handshake *raises*, not when
it is cancelled: each such token left one socket open after the request gave up
(3 of 3 still open 2 s later, and after a garbage collection; issue 23). so:

- the handshake has its own bound (`HANDSHAKE_SECONDS`, at most the request's),
  which fires inside the deadline as a timeout httpcore handles (closing the
  socket), and a silent host costs that, not the whole deadline;
- a stream whose handshake ends any other way (cancelled) is closed here.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any, Final

import httpcore
import httpx

# a TLS 1.3 handshake is one round trip after TCP's: a second covers the far side of
# the world several times over, and is a third of the did:web fetch deadline (3 s).
HANDSHAKE_SECONDS: Final = 1.0


class _ClosingStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream, handshake_seconds: float) -> None:
        self._inner = inner
        self._handshake_seconds = handshake_seconds

    # `timeout` parameters: httpcore's stream interface, not ours to change
    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> httpcore.AsyncNetworkStream:
        bound = self._handshake_seconds
        if timeout is not None:
            bound = min(timeout, bound)
        try:
            return await self._inner.start_tls(ssl_context, server_hostname, bound)
        except BaseException:
            # cancelled, most likely: the socket is aborted before the first await of
            # `aclose`, so even a cancellation delivered again there cannot keep it open.
            await self._inner.aclose()
            raise


class ClosingBackend(httpcore.AsyncNetworkBackend):
    """httpcore's own backend (or `inner`: tests route it to loopback), its streams
    bounded and closed as the module says."""

    def __init__(
        self,
        handshake_seconds: float = HANDSHAKE_SECONDS,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._inner = inner or httpcore.AnyIOBackend()
        self.handshake_seconds = handshake_seconds

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _ClosingStream(stream, self.handshake_seconds)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def bounded_transport(
    limits: httpx.Limits,
    *,
    handshake_seconds: float = HANDSHAKE_SECONDS,
    network: httpcore.AsyncNetworkBackend | None = None,
) -> httpx.AsyncHTTPTransport:
    """httpx's transport over `ClosingBackend`. httpx takes no network backend, so its
    pool is replaced by one built as httpx builds it (verified TLS, HTTP/1.1), with
    the backend added: `tests/test_hardening_tls.py` holds both halves to it."""
    transport = httpx.AsyncHTTPTransport(limits=limits)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=ClosingBackend(handshake_seconds, network),
    )
    return transport
