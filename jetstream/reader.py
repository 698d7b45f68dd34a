"""the websocket side of one connection: frames into a bounded queue, taken in batches.

the queue is the flow control: when batches are handled slower than frames
arrive it fills, the reader stops reading, websockets stops reading the
socket, and TCP pushes back on the host.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed


@dataclass(frozen=True, slots=True)
class EndOfStream:
    """the reader's last word: why the connection ended."""

    error: ConnectionClosed


async def read_frames(
    connection: ClientConnection, queue: asyncio.Queue[bytes | EndOfStream]
) -> None:
    """websocket -> queue, until the connection ends (then one `EndOfStream`)."""
    try:
        while True:
            # bytes, not str: orjson parses UTF-8 directly, and the size bound of
            # the decoder is then exact.
            await queue.put(await connection.recv(decode=False))
    except ConnectionClosed as closed:
        await queue.put(EndOfStream(closed))


def drain(
    first: bytes | EndOfStream, queue: asyncio.Queue[bytes | EndOfStream], limit: int
) -> tuple[list[bytes], EndOfStream | None]:
    """the frames already waiting (at most `limit`), and the end marker if reached:
    frames received before a drop are still handled."""
    if isinstance(first, EndOfStream):
        return [], first
    frames = [first]
    while len(frames) < limit and not queue.empty():
        item = queue.get_nowait()
        if isinstance(item, EndOfStream):
            return frames, item
        frames.append(item)
    return frames, None
