"""the live events for the page: the lines the terminal view prints, fanned out to the
page's event streams, and what the firehose path did with each playlist's versions.

`EditorView` is the terminal's live view with two additions: each printed line
also goes to the `EventHub` (the page's server-sent events), and the newest
version the consumer queued and the worker handled is kept per playlist, so
the page can show an edit travel the firehose path. fan-out is bounded: a
fixed number of streams, a bounded queue each (a stream that falls behind
loses events, counted, rather than holding memory), a bounded history for a
stream that reconnects.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Final

from rich.console import Console
from rich.text import Text

from jetstream.enqueue import Enqueued
from worker.demo.steps import SessionStep
from worker.processes.editor.book import PlaylistBook
from worker.processes.live_view import LiveView
from worker.recs.recommender import Ensured

HISTORY: Final = 300  # events a new or reconnecting stream is sent first
MAX_STREAMS: Final = 8  # the page is one person's on loopback: a few tabs at most
STREAM_QUEUE: Final = 256  # events waiting for one slow stream before it loses some
REDACTED: Final = "…"


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """one printed line: `source` is its first word (firehose, consumer, worker...)."""

    id: int
    elapsed: float
    source: str
    text: str

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "elapsed": round(self.elapsed, 2),
            "source": self.source,
            "text": self.text,
        }


class EventHub:
    """hands every event to each open stream; secrets never leave it."""

    def __init__(self, *, secrets: Iterable[str] = ()) -> None:
        self._secrets = tuple(secret for secret in secrets if secret)
        self._history: deque[LiveEvent] = deque(maxlen=HISTORY)
        self._streams: set[asyncio.Queue[LiveEvent | None]] = set()
        self._next_id = 1
        self.closed = False
        self.lost = 0  # events a slow stream did not get

    def publish(self, elapsed: float, text: str) -> None:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        source = text.split(maxsplit=1)[0] if text.strip() else ""
        event = LiveEvent(self._next_id, elapsed, source, text)
        self._next_id += 1
        self._history.append(event)
        for queue in self._streams:
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                self.lost += 1

    async def stream(
        self, after_id: int = 0, *, keepalive_seconds: float = 15.0
    ) -> AsyncIterator[LiveEvent | None]:
        """the history past `after_id`, then each new event, until the hub closes; None
        after `keepalive_seconds` of quiet (a comment line that finds dead connections).
        the caller keeps to MAX_STREAMS (`streams`) before opening one."""
        if self.closed:
            return
        queue: asyncio.Queue[LiveEvent | None] = asyncio.Queue(STREAM_QUEUE)
        self._streams.add(queue)
        try:
            for event in list(self._history):
                if event.id > after_id:
                    yield event
            while True:
                try:
                    async with asyncio.timeout(keepalive_seconds):
                        queued = await queue.get()
                except TimeoutError:
                    yield None
                    continue
                if queued is None:
                    return
                if queued.id > after_id:
                    yield queued
        finally:
            self._streams.discard(queue)

    @property
    def streams(self) -> int:
        return len(self._streams)

    def close(self) -> None:
        """end every stream (the server waits for open responses before it stops)."""
        self.closed = True
        for queue in self._streams:
            while True:
                try:
                    queue.put_nowait(None)
                    break
                except asyncio.QueueFull:
                    queue.get_nowait()  # the end matters more than a last event


@dataclass(frozen=True, slots=True)
class Handled:
    """what the worker last did for a playlist: the version and the outcome."""

    cid: str
    outcome: str


class EditorView(LiveView):
    """the terminal's live view, also feeding the page (see the module's docstring)."""

    def __init__(
        self, console: Console, names: dict[str, str], *, book: PlaylistBook, hub: EventHub
    ) -> None:
        super().__init__(console, names)
        self.book = book
        self.hub = hub
        self.queued: dict[str, str] = {}  # playlist uri -> newest cid queued for recompute
        self.handled: dict[str, Handled] = {}  # playlist uri -> the worker's newest

    def frame_sent(self, step: SessionStep) -> None:
        self.book.saw(step)
        super().frame_sent(step)

    def __call__(self, enqueued: Enqueued) -> None:
        if enqueued.task == "recompute" and enqueued.cid is not None:
            self.queued[enqueued.playlist_uri] = enqueued.cid
        super().__call__(enqueued)

    def recomputed(self, playlist_uri: str, cid: str, refreshed: Ensured) -> None:
        self.handled[playlist_uri] = Handled(cid, refreshed.outcome.value)
        super().recomputed(playlist_uri, cid, refreshed)

    def _line(self, text: Text | str) -> None:
        super()._line(text)
        plain = text.plain if isinstance(text, Text) else text
        self.hub.publish(time.monotonic() - self.started, plain)
