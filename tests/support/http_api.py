"""the API of a `running_api` served by uvicorn on a loopback port, as `plyr-recs api`
serves it (`server_config`): for what only a real connection has (the peer address,
raw headers). the app's lifespan is the `running_api`'s, so it is off here."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import uvicorn
from fastapi import FastAPI

from tests.support.jetstream_world import eventually
from worker.api.app import server_config


def loopback_socket() -> socket.socket:
    """a socket bound to a free loopback port (known before the app is built)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


@asynccontextmanager
async def served_over_http(
    app: FastAPI, sock: socket.socket | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    sock = sock or loopback_socket()
    port = sock.getsockname()[1]
    config = server_config(app, host="127.0.0.1", port=port)
    config.lifespan = "off"
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await eventually(lambda: server.started)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            yield client
    finally:
        server.should_exit = True
        await task
        sock.close()
