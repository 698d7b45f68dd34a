"""the API's HTTP/1.1 connections, bounded: header bytes and count, a time to send
them, and a connection bound that sheds idle connections before anyone waiting.

uvicorn, as configured before issue 16, let 1,001 TCP connections that sent
nothing make every client a 503 (its `limit_concurrency` counts idle
connections, and nothing closes one that never sends a request), accepted a
20 MiB header value, and spent ~0.65 s of the event loop on a request with
400,000 headers. Fly's proxy absorbs some of that from the internet, not on the
private network (`API_HOST=0.0.0.0`). so this protocol (uvicorn's httptools one,
with checks around it):

- a request's headers must arrive within `HEADER_TIMEOUT_SECONDS` of the
  connection opening or the previous response ending (slowloris, idle sockets);
  between requests uvicorn's keep-alive timeout closes idle connections too;
- at most `MAX_HEADER_BYTES` and `MAX_HEADERS`: past either, 431 and close,
  before the application sees the request;
- at most `MAX_CONNECTIONS` open: a new connection past it closes the
  connection idle the longest (no request in progress), so clients with work
  are never refused for sockets doing nothing; only when every connection is
  busy is the newcomer answered 503 and closed.
"""

from __future__ import annotations

import asyncio
from typing import Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# a service-auth JWT is ~1 KiB and plyr.fm sends a handful of headers; nginx's
# default is 8 KiB per line, 32 KiB in all. 16 KiB is generous for this API.
MAX_HEADER_BYTES: Final = 16 * 1024
MAX_HEADERS: Final = 64
# a real client sends its headers in one packet; 10 s covers a slow mobile link.
HEADER_TIMEOUT_SECONDS: Final = 10.0
MAX_CONNECTIONS: Final = 1000
REFUSAL_LINGER_SECONDS: Final = 1.0


def _response(status: bytes) -> bytes:
    body = status.split(b" ", 1)[1]
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
    )


HEADERS_TOO_LARGE: Final = _response(b"431 Request Header Fields Too Large")
TOO_MANY_CONNECTIONS: Final = _response(b"503 Service Unavailable")


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the bounds of the module doc."""

    max_header_bytes: int = MAX_HEADER_BYTES
    max_headers: int = MAX_HEADERS
    header_timeout_seconds: float = HEADER_TIMEOUT_SECONDS
    max_connections: int = MAX_CONNECTIONS

    _awaiting_headers = True
    _header_bytes = 0
    _header_count = 0
    _refused = False
    _idle_since = 0.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._idle_since = self.loop.time()
        if len(self.connections) > self.max_connections and not self._shed_an_idle_one():
            self._refuse(TOO_MANY_CONNECTIONS)
            return
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._awaiting_headers:
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes:
                self._refuse(HEADERS_TOO_LARGE)
                return
        super().data_received(data)
        if self._header_count > self.max_headers and not self._refused:
            self._refuse(HEADERS_TOO_LARGE)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count <= self.max_headers:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._header_count > self.max_headers:
            return  # refused once the parser returns: the application never sees it
        self._awaiting_headers = False
        self._disarm_header_timer()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._header_count <= self.max_headers:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._header_count > self.max_headers:
            return  # a request refused at its headers has no cycle to complete
        super().on_message_complete()
        # the next request's headers are counted from here (pipelining included)
        self._awaiting_headers = True
        self._header_bytes = 0
        self._header_count = 0

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._idle_since = self.loop.time()
        if self._awaiting_headers and not self.transport.is_closing():
            self._arm_header_timer()

    @property
    def idle(self) -> bool:
        """no request in progress: between requests, or none sent yet."""
        return self.cycle is None or self.cycle.response_complete

    def _shed_an_idle_one(self) -> bool:
        idle = [
            c
            for c in self.connections
            if isinstance(c, GuardedHttpProtocol) and c is not self and c.idle and not c._refused
        ]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c._idle_since)
        oldest._refused = True
        oldest.transport.close()
        # out of the count now, not when the loop gets to `connection_lost`: else a
        # request arriving meanwhile meets uvicorn's own bound and a 503.
        self.connections.discard(oldest)
        return True

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout_seconds, self._too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if self._awaiting_headers and not self.transport.is_closing():
            self._refused = True
            self.transport.close()

    def _refuse(self, response: bytes) -> None:
        """answer `response` and close. what the client is still sending is read and
        dropped for up to `REFUSAL_LINGER_SECONDS` first: closing a socket with
        unread bytes resets it, and the reset would destroy the answer in flight."""
        self._refused = True
        self._disarm_header_timer()
        if self.transport.is_closing():
            return
        self.transport.write(response)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(REFUSAL_LINGER_SECONDS, self.transport.close)

    def eof_received(self) -> None:
        if self._refused:  # the client read the refusal and closed its side
            self.transport.close()
