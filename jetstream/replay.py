"""a small Jetstream-compatible websocket server that replays recorded frames.

it serves `/subscribe` with the v1 query semantics the consumer relies on:
`wantedCollections` (repeatable; exact NSIDs or `prefix.*`) filters commits,
identity and account events always pass, and `cursor` replays events with
`time_us >= cursor`. one difference from a real host, on purpose: without a
cursor a real host starts at the live tail, the replay starts at the beginning
(there is no "live" in a file). after the last frame the connection stays open
and idle, like a quiet firehose, and frames appended later are delivered to
every open connection.

used by the tests, the embedded mode (`plyr-recs run`) and the benchmark. fault
hooks (`ReplayFaults`) break things the way the network does: refuse handshakes,
cut the TCP connection after N frames, stall mid-stream, interleave garbage,
ignore `wantedCollections` (a blind host).
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

logger = logging.getLogger(__name__)

# frames a broken relay or a hostile proxy could send: invalid UTF-8, truncated
# JSON, the wrong JSON type, a negative cursor position.
DEFAULT_GARBAGE: tuple[bytes, ...] = (
    b"\xff\xfe\x00 not utf-8",
    b'{"did": "did:plc:',
    b"[]",
    b'{"time_us": -1, "kind": "commit"}',
)


@dataclass
class ReplayFaults:
    """faults to inject; mutable, so a test can arm one between two connections."""

    refuse_connections: int = 0  # answer the next N handshakes with HTTP 503
    drop_after: list[int] = field(default_factory=list)  # per new connection: abort after N frames
    stall_after: int | None = None  # the next connection stops after N frames until `resume()`
    garbage_every: int = 0  # after every N real frames, send one garbage frame
    garbage: tuple[bytes, ...] = DEFAULT_GARBAGE
    ignore_wanted_collections: bool = False  # a "blind" host that sends every collection
    stalled: asyncio.Event = field(default_factory=asyncio.Event)
    _released: asyncio.Event = field(default_factory=asyncio.Event)

    def resume(self) -> None:
        """let a stalled connection carry on."""
        self._released.set()


@dataclass(frozen=True, slots=True)
class ConnectionLog:
    """what one client asked for (tests assert resume positions with it)."""

    cursor: int | None
    wanted_collections: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Entry:
    position_us: int  # own time_us, or the previous entry's for a frame without one
    commit_collection: str | None  # None: not a well-formed commit, always sent
    payload: bytes
    is_text: bool


class ReplayServer:
    """replays frames over websockets on 127.0.0.1 (port 0 picks a free one)."""

    def __init__(
        self,
        frames: Iterable[bytes | str] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: ReplayFaults | None = None,
        frames_per_second: float | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.faults = faults or ReplayFaults()
        self.frames_per_second = frames_per_second
        self.connections: list[ConnectionLog] = []
        self.frames_sent = 0
        self._entries: list[_Entry] = []
        self._grew = asyncio.Event()
        self._server: Server | None = None
        self.append(frames)

    @staticmethod
    def read_frames(path: Path) -> list[bytes]:
        """one frame per non-blank line of a JSONL file."""
        return [line for line in path.read_bytes().splitlines() if line.strip()]

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/subscribe"

    def append(self, frames: Iterable[bytes | str]) -> None:
        """add frames at the end; open connections receive them too."""
        for frame in frames:
            payload = frame.encode() if isinstance(frame, str) else bytes(frame)
            previous = self._entries[-1].position_us if self._entries else 0
            self._entries.append(_index(payload, previous))
        grew, self._grew = self._grew, asyncio.Event()
        grew.set()

    async def start(self) -> None:
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._check_request,
            max_size=1024 * 1024,
        )
        sockets = list(self._server.sockets)
        self.port = sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if self.faults.refuse_connections > 0:
            self.faults.refuse_connections -= 1
            return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "refused (fault)\n")
        parts = urlsplit(request.path)
        if parts.path != "/subscribe":
            return connection.respond(http.HTTPStatus.NOT_FOUND, "only /subscribe\n")
        try:
            _parse_cursor(parts.query)
        except ValueError:
            return connection.respond(
                http.HTTPStatus.BAD_REQUEST, "cursor must be a non-negative integer (µs)\n"
            )
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        query = urlsplit(connection.request.path if connection.request else "").query
        cursor = _parse_cursor(query)  # valid: _check_request answered 400 otherwise
        wanted = tuple(parse_qs(query).get("wantedCollections", ()))
        self.connections.append(ConnectionLog(cursor, wanted))
        faults = self.faults
        drop_after = faults.drop_after.pop(0) if faults.drop_after else None
        stall_after, faults.stall_after = faults.stall_after, None
        # the client going away ends the stream; there is nothing to clean up.
        with contextlib.suppress(ConnectionClosed):
            await self._stream(
                connection,
                cursor=cursor,
                wanted=wanted,
                drop_after=drop_after,
                stall_after=stall_after,
            )

    async def _stream(
        self,
        connection: ServerConnection,
        *,
        cursor: int | None,
        wanted: Sequence[str],
        drop_after: int | None,
        stall_after: int | None,
    ) -> None:
        faults = self.faults
        index = 0
        sent = 0
        delay = 1 / self.frames_per_second if self.frames_per_second else 0.0
        while True:
            grew = self._grew
            while index < len(self._entries):
                entry = self._entries[index]
                index += 1
                if cursor is not None and entry.position_us < cursor:
                    continue
                if not faults.ignore_wanted_collections and not _wanted(entry, wanted):
                    continue
                if stall_after is not None and sent == stall_after:
                    faults.stalled.set()
                    if not await _unless_closed(connection, faults._released):
                        return
                await connection.send(entry.payload, text=entry.is_text)
                sent += 1
                self.frames_sent += 1
                if faults.garbage_every and sent % faults.garbage_every == 0 and faults.garbage:
                    junk = faults.garbage[(sent // faults.garbage_every - 1) % len(faults.garbage)]
                    await connection.send(junk, text=is_utf8(junk))
                if drop_after is not None and sent >= drop_after:
                    # the TCP connection ends without a close frame, as when a host
                    # crashes or a proxy cuts the line. close(), not abort(): frames
                    # already sent are delivered first, so tests know exactly what
                    # the client received before the drop.
                    connection.transport.close()
                    return
                if delay:
                    await asyncio.sleep(delay)
            if not await _unless_closed(connection, grew):
                return


async def _unless_closed(connection: ServerConnection, event: asyncio.Event) -> bool:
    """wait for `event`; False if the connection closed first (the client left or
    the server is shutting down), so an idle handler never outlives its connection."""
    waiting = asyncio.create_task(event.wait())
    closed = asyncio.create_task(connection.wait_closed())
    done, pending = await asyncio.wait({waiting, closed}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    return waiting in done


def _parse_cursor(query: str) -> int | None:
    """the requested cursor; ValueError when it is not a non-negative integer."""
    values = parse_qs(query).get("cursor")
    if not values:
        return None
    cursor = int(values[-1])
    if cursor < 0:
        raise ValueError("negative cursor")
    return cursor


def _wanted(entry: _Entry, wanted: Sequence[str]) -> bool:
    if not wanted or entry.commit_collection is None:
        return True
    collection = entry.commit_collection
    return any(
        collection == pattern or (pattern.endswith(".*") and collection.startswith(pattern[:-1]))
        for pattern in wanted
    )


def is_utf8(payload: bytes) -> bool:
    """whether a frame can go out as a text message (valid UTF-8); anything else is
    sent as binary."""
    try:
        payload.decode()
    except UnicodeDecodeError:
        return False
    return True


def _index(payload: bytes, previous_position_us: int) -> _Entry:
    """where a frame sits in time and which collection it is a commit of. garbage
    keeps its place in the file: it is sent whenever its predecessor is."""
    is_text = is_utf8(payload)
    try:
        message = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return _Entry(previous_position_us, None, payload, is_text)
    if not isinstance(message, dict):
        return _Entry(previous_position_us, None, payload, is_text)
    time_us = message.get("time_us")
    position = time_us if type(time_us) is int and time_us >= 0 else previous_position_us
    commit = message.get("commit")
    collection = commit.get("collection") if isinstance(commit, dict) else None
    if message.get("kind") != "commit" or not isinstance(collection, str):
        collection = None
    return _Entry(position, collection, payload, is_text)
