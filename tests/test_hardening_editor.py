"""the editor page against raw sockets (issue 23, finding 10): an edit whose body never
finishes, and a request with two `Host` headers. the page's routes are mounted as the
embedded run mounts them, on an app served by uvicorn as `server_config` sets it up;
the refusals come before any of the demo's state is touched, so the site is a stand-in
that only counts them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import cast

import pytest
from fastapi import FastAPI

from tests.support.http_api import loopback_socket, served_over_http
from worker.processes.editor.guard import page_hosts
from worker.processes.editor.routes import mount_editor
from worker.processes.editor.site import EditorSite

BODY_TIMEOUT = 0.5
EDIT_PATH = "/editor/api/playlists/11111111-1111-4111-8111-111111111111/tracks"


@dataclass
class CountingSite:
    refused: dict[str, int] = field(default_factory=dict)


@dataclass
class Page:
    port: int
    site: CountingSite

    async def exchange(self, head: bytes, body: bytes = b"") -> bytes:
        """send a request (maybe never finished) and read the whole answer."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(head + body)
            await writer.drain()
            return await asyncio.wait_for(reader.read(), 10)  # until the server closes
        finally:
            writer.close()


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    sock = loopback_socket()
    port = sock.getsockname()[1]
    app = FastAPI()
    site = CountingSite()
    mount_editor(
        app,
        cast(EditorSite, site),
        hosts=page_hosts("127.0.0.1", port),
        body_timeout_seconds=BODY_TIMEOUT,
    )
    async with served_over_http(app, sock):
        yield Page(port, site)


def edit_head(port: int, length: int) -> bytes:
    return (
        f"POST {EDIT_PATH} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
        f"origin: http://127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
        f"content-length: {length}\r\n\r\n"
    ).encode()


async def test_an_edit_whose_body_never_finishes_is_timed_out(page: Page) -> None:
    """before: the edit waited for the rest of its body for good."""
    answer = await page.exchange(edit_head(page.port, 40), b'{"track_id": ')
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert page.site.refused == {"the edit's body did not arrive in time": 1}


async def test_a_request_with_two_host_headers_is_refused(page: Page) -> None:
    """before: the last `Host` won, so the guard judged one and the router saw another."""
    head = (
        f"GET /editor/api/status HTTP/1.1\r\nhost: evil.example\r\n"
        f"host: 127.0.0.1:{page.port}\r\nconnection: close\r\n\r\n"
    ).encode()
    answer = await page.exchange(head)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert page.site.refused == {"exactly one Host header": 1}


async def test_a_small_edit_with_its_body_reaches_the_edit(page: Page) -> None:
    """the bound does not touch a whole edit: it is read and goes on to be judged
    (a bad track id here, refused as the route always refused it)."""
    body = b'{"track_id": 0}'
    answer = await page.exchange(
        edit_head(page.port, len(body)).replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n"),
        body,
    )
    assert answer.startswith(b"HTTP/1.1 422 ")
