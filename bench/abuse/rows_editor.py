"""the editor page's row in `python -m bench abuse`'s components table (issue 23,
finding 10): the page's routes mounted as the embedded run mounts them
(`mount_editor`), served by uvicorn as `server_config` sets it up, on loopback; raw
sockets send edits whose body never finishes and requests with two `Host` headers,
while the page's own polling (`GET /editor/api/status`) goes on. the refusals come
before any of the demo's state is touched, so the site is a stand-in that answers
the status and counts the refusals.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Final, cast

import httpx
import uvicorn
from fastapi import FastAPI

from bench.abuse.component_row import ComponentRow
from bench.abuse.phase import percentile
from worker.api.app import server_config
from worker.processes.editor.guard import page_hosts
from worker.processes.editor.routes import mount_editor
from worker.processes.editor.site import EditorSite

BODY_SECONDS: Final = 2.0  # EDIT_BODY_SECONDS, scaled (production 10 s)
HANGING_EDITS: Final = 200
TWO_HOSTS_RATE: Final = 50.0  # a second
POLL_RATE: Final = 10.0  # the page's status polls a second (legitimate)
EDIT_PATH: Final = "/editor/api/playlists/11111111-1111-4111-8111-111111111111/tracks"


@dataclass
class _Site:
    refused: dict[str, int] = field(default_factory=dict)

    def status(self) -> dict[str, object]:
        return {"session": {"frames": 0, "sent": 0, "done": True}, "refused": dict(self.refused)}


@dataclass
class _Outcome:
    polls: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)  # the attack's, by status line
    held: int = 0  # hanging edits' connections still open past the body bound + 1 s
    sent: int = 0


async def _polls(port: int, seconds: float, outcome: _Outcome) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        start = time.monotonic()

        async def poll(due: float) -> None:
            try:
                response = await client.get("/editor/api/status", timeout=10.0)
            except httpx.HTTPError as error:
                outcome.polls[type(error).__name__] += 1
                return
            outcome.latencies.append((time.monotonic() - due) * 1000)
            outcome.polls["ok" if response.status_code == 200 else str(response.status_code)] += 1

        tasks = []
        for n in range(int(seconds * POLL_RATE)):
            due = start + n / POLL_RATE
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            tasks.append(asyncio.create_task(poll(due)))
        await asyncio.gather(*tasks)


def _status(answer: bytes) -> str:
    return answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/1.1 ") else "none"


async def _hanging_edit(port: int, outcome: _Outcome) -> None:
    """an edit whose body never finishes: its answer, and whether the server closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"POST {EDIT_PATH} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
            f"origin: http://127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
            f"content-length: 40\r\n\r\n".encode()
            + b'{"track_id": '
        )
        await writer.drain()
        try:
            answer = await asyncio.wait_for(reader.read(), BODY_SECONDS + 1.0)  # to the close
        except TimeoutError:
            outcome.held += 1
            answer = b""
        outcome.answers[_status(answer)] += 1
    finally:
        writer.close()


async def _two_hosts(port: int, seconds: float, outcome: _Outcome) -> None:
    head = (
        f"GET /editor/api/status HTTP/1.1\r\nhost: evil.example\r\n"
        f"host: 127.0.0.1:{port}\r\nconnection: close\r\n\r\n"
    ).encode()

    async def once() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(head)
            with contextlib.suppress(TimeoutError, ConnectionError):
                outcome.answers[_status(await asyncio.wait_for(reader.read(), 5.0))] += 1
        finally:
            writer.close()

    tasks = []
    start = time.monotonic()
    for n in range(int(seconds * TWO_HOSTS_RATE)):
        await asyncio.sleep(max(0.0, start + n / TWO_HOSTS_RATE - time.monotonic()))
        tasks.append(asyncio.create_task(once()))
    await asyncio.gather(*tasks)


async def _run(seconds: float, attack: bool) -> _Outcome:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = FastAPI()
    site = _Site()
    mount_editor(
        app,
        cast(EditorSite, site),
        hosts=page_hosts("127.0.0.1", port),
        body_timeout_seconds=BODY_SECONDS,
    )
    config = server_config(app, host="127.0.0.1", port=port)
    config.lifespan = "off"
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    outcome = _Outcome()
    try:
        for _ in range(1000):  # uvicorn signals its start only by this flag
            if server.started:
                break
            await asyncio.sleep(0.01)
        jobs = [_polls(port, seconds, outcome)]
        if attack:
            jobs.append(_two_hosts(port, seconds, outcome))
            jobs.extend(_hanging_edit(port, outcome) for _ in range(HANGING_EDITS))
            outcome.sent = HANGING_EDITS + int(seconds * TWO_HOSTS_RATE)
        await asyncio.gather(*jobs)
    finally:
        server.should_exit = True
        await serving
        sock.close()
    return outcome


async def editor_page(redis_url: str, seconds: float) -> ComponentRow:
    duration = max(seconds, BODY_SECONDS + 1.5)
    quiet = await _run(duration, attack=False)
    attacked = await _run(duration, attack=True)
    polls = int(duration * POLL_RATE)
    two_hosts = int(duration * TWO_HOSTS_RATE)
    ok = (
        quiet.polls["ok"] == attacked.polls["ok"] == polls
        and attacked.answers["408"] == HANGING_EDITS
        and attacked.answers["400"] == two_hosts
        and attacked.held == 0
    )

    def legit(outcome: _Outcome) -> str:
        p99 = percentile(outcome.latencies, 0.99)
        return f"{outcome.polls['ok']}/{polls} polls ok, p99 {p99:.0f} ms"

    return ComponentRow(
        name="editor page: hanging edits, two Hosts",
        attack=f"{HANGING_EDITS} edits never finishing their body; "
        f"{TWO_HOSTS_RATE:g}/s two-Host requests",
        legit_quiet=legit(quiet),
        legit_attack=legit(attacked),
        resource=f"408: {attacked.answers['408']}/{HANGING_EDITS}, held past "
        f"{BODY_SECONDS + 1:g} s: {attacked.held}; 400: {attacked.answers['400']}/{two_hosts}",
        bound=f"every edit 408 and closed by {BODY_SECONDS:g} s (scaled from 10 s) + 1; "
        "every two-Host 400",
        ok=ok,
        note="" if ok else f"answers {dict(attacked.answers)}",
    )
