"""the long-running Jetstream consumer: connect, read, hand batches over, reconnect.

why it is shaped this way:

- one reader task per connection moves frames from the websocket into a bounded
  queue; the handler takes whatever has arrived (up to `batch_frames`) and
  processes it in order. when the handler is slow the queue fills, the reader
  stops reading, websockets stops reading the socket, and TCP pushes back on
  the host: explicit flow control, bounded memory.
- no receive timeout: a quiet firehose is normal. liveness is the library's
  ping/pong, which closes a dead connection for us.
- any fault of the connection or of Redis/docket ends the connection. the
  cursor only ever covers handled batches, so the reconnect (next host,
  jittered backoff, rewound cursor) replays exactly what might be missing and
  the rev guard drops what was not. while Redis is down nothing is read at
  all: the session first reads the cursor and pings Redis, and backs off
  until both work.
- shutdown (the `stop` event, set by SIGTERM/SIGINT in the CLI) lets the batch
  in hand finish, then flushes the cursor and the counters and closes.

a frame's content never raises out of here (`jetstream.frames` turns it into a
counted rejection); what propagates is only a programming error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import redis.asyncio as aioredis
from docket import Docket
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidHandshake

from jetstream.backoff import Backoff, jittered_backoff
from jetstream.batch import BatchProcessor, Observer
from jetstream.config import WEBSOCKET_MAX_SIZE, ConsumerConfig
from jetstream.contract import TaskFunctions
from jetstream.cursor import Cursor, CursorStore, rewound
from jetstream.enqueue import Enqueuer, TaskSink
from jetstream.faults import FAULTS
from jetstream.flood import FloodControl
from jetstream.guard import RevGuard
from jetstream.keys import JetstreamKeys
from jetstream.state_watch import StateWatch
from jetstream.stats import ConsumerStats, StatsStore
from jetstream.subscription import HostRotation, subscribe_url

logger = logging.getLogger(__name__)

# the state store (our Redis, or docket's) is unavailable, or docket did not take
# a task (`EnqueueFailed` is transient): stop reading, back off, replay.
STORE_ERRORS = FAULTS.transient


# how long a polite close on shutdown may wait for the host's close frame.
CLOSE_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class _EndOfStream:
    """the reader's last word: why the connection ended."""

    error: ConnectionClosed


class JetstreamConsumer:
    """follows the list collection on Jetstream and enqueues the worker's tasks.

    `redis` holds the consumer's own state (cursor, rev guard, counters);
    `docket` receives the tasks, `tasks` are the worker's task functions (the
    process running the consumer hands them in: the consumer never imports the
    worker). all injected so `plyr-recs jetstream` (real Redis) and `plyr-recs
    run` (fakeredis + memory://) share this code.
    `observer` sees every task handed to docket (tests, the embedded mode's
    log); `enqueuer` replaces the docket call pattern (the benchmark's baseline).
    """

    def __init__(
        self,
        *,
        config: ConsumerConfig,
        redis: aioredis.Redis,
        docket: Docket,
        tasks: TaskFunctions | None = None,
        clock: Callable[[], float] = time.time,
        backoff: Backoff | None = None,
        observer: Observer | None = None,
        enqueuer: TaskSink | None = None,
    ) -> None:
        self.config = config
        self.keys = JetstreamKeys(config.limits.list_collection)
        self.stats = ConsumerStats()
        self.cursor = Cursor(CursorStore(redis, self.keys))
        self._redis = redis
        self._clock = clock
        self._stats_store = StatsStore(redis, self.keys)
        self._rotation = HostRotation(config.hosts)
        self._backoff = backoff or jittered_backoff(
            config.backoff_base_seconds, config.backoff_cap_seconds
        )
        if enqueuer is None:
            if tasks is None:
                raise ValueError("a consumer needs the worker's task functions, or an enqueuer")
            enqueuer = Enqueuer(
                docket,
                tasks=tasks,
                debounce_seconds=config.debounce_seconds,
                clock=clock,
                flood=FloodControl(config.flood),
            )
        self._processor = BatchProcessor(
            limits=config.limits,
            guard=RevGuard(redis, self.keys, config.rev_ttl_seconds),
            enqueuer=enqueuer,
            cursor=self.cursor,
            stats=self.stats,
            observer=observer,
            clock=clock,
        )
        self._progressed = False
        self._flush_failing = False
        self._state_watch = StateWatch(redis, self.keys, ttl_seconds=config.rev_ttl_seconds)
        self._connection: ClientConnection | None = None

    def cursor_lag_seconds(self) -> float | None:
        """how far the done position is behind now (None before the first event)."""
        done = self.cursor.done
        return None if done is None else max(0.0, self._clock() - done / 1_000_000)

    async def run(self, stop: asyncio.Event) -> None:
        """consume until `stop` is set; returns after the final flush."""
        housekeeping = asyncio.create_task(self._housekeeping(stop))
        try:
            await self._connect_loop(stop)
        finally:
            housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await housekeeping
            await self._flush(final=True)
            logger.info("jetstream consumer stopped: %s", self._summary())

    async def _connect_loop(self, stop: asyncio.Event) -> None:
        delays: Iterator[float] = self._backoff()
        # the first position comes from Redis, written by a process that may have
        # followed another host: rewind as for a host change.
        changed_host = True
        while not stop.is_set():
            self._progressed = False
            reason = await self._session_outcome(stop, changed_host)
            if stop.is_set():
                return
            self.stats.reconnects[reason] += 1
            if self._progressed:
                delays = self._backoff()  # the connection did work: a new failure streak
            delay = next(delays)
            changed_host = self._rotation.advance()
            logger.warning(
                "jetstream connection ended (%s); reconnecting to %s in %.2fs",
                reason,
                self._rotation.current,
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    async def _session_outcome(self, stop: asyncio.Event, changed_host: bool) -> str:
        """run one connection; the reason it ended (classified, counted by the caller)."""
        try:
            await self._session(stop, changed_host)
        except STORE_ERRORS as exc:
            self.stats.store_errors += 1
            # Redis may have come back empty: make the next flush rewrite the cursor.
            self.cursor.flushed = None
            logger.warning("state store unavailable, not reading: %r", exc)
            return "store_unavailable"
        except ConnectionClosedOK:
            return "closed"
        except ConnectionClosed as exc:
            logger.info("jetstream connection dropped: %r", exc)
            return "dropped"
        except InvalidHandshake as exc:
            logger.info("jetstream handshake refused: %r", exc)
            return "refused"
        except OSError as exc:  # refused, unreachable, DNS, open timeout (TimeoutError)
            logger.info("jetstream host unreachable: %r", exc)
            return "unreachable"
        return "closed"

    async def _session(self, stop: asyncio.Event, changed_host: bool) -> None:
        position = await self.cursor.resume_position()
        await self._redis.ping()  # never read a frame we could not acknowledge
        await self._state_watch.check()
        if self._state_watch.take_loss() and position is not None:
            # what was enqueued is gone with Redis: that work is not done any more
            self.cursor.undo_after(rewound(position, self.config.lost_state_rewind_seconds))
            position = self.cursor.done
            logger.warning(
                "Redis lost the consumer's state (cursor, revs, queued tasks, cache): "
                "replaying the last %.0fs of list commits",
                self.config.lost_state_rewind_seconds,
            )
        rewind = (
            self.config.rotation_rewind_seconds
            if changed_host
            else self.config.cursor_rewind_seconds
        )
        start = rewound(position, rewind) if position is not None else None
        host = self._rotation.current
        url = subscribe_url(host, self.config.limits.list_collection, start)
        async with connect(
            url,
            open_timeout=self.config.open_timeout_seconds,
            max_size=WEBSOCKET_MAX_SIZE,
            # no permessage-deflate: the filtered stream is a few frames per second
            # in production, and inflating every frame costs more CPU than the
            # bandwidth is worth (measured with `plyr-recs bench jetstream`).
            compression=None,
            # bounds the polite close on shutdown; a busy stream may have filled the
            # library's buffer, and then the host's close frame is never read.
            close_timeout=CLOSE_TIMEOUT_SECONDS,
        ) as connection:
            self.stats.connected_host = host
            self._connection = connection
            logger.info("jetstream connected to %s from cursor %s", host, start)
            try:
                await self._pump(connection, stop)
            finally:
                self.stats.connected_host = None
                self._connection = None

    async def _pump(self, connection: ClientConnection, stop: asyncio.Event) -> None:
        queue: asyncio.Queue[bytes | _EndOfStream] = asyncio.Queue(maxsize=self.config.batch_frames)
        reader = asyncio.create_task(_read(connection, queue))
        stopping = asyncio.create_task(stop.wait())
        arrival: asyncio.Task[bytes | _EndOfStream] | None = None
        clean_exit = False
        try:
            while not stop.is_set():
                if queue.empty():
                    arrival = asyncio.create_task(queue.get())
                    await asyncio.wait({arrival, stopping}, return_when=asyncio.FIRST_COMPLETED)
                    if not arrival.done():
                        arrival.cancel()  # stopping while idle: no frame in hand
                        break
                    first = arrival.result()
                else:
                    first = queue.get_nowait()
                frames, end = _drain(first, queue, self.config.batch_frames)
                if frames:
                    await self._processor.process(frames)
                    self._progressed = True
                if end is not None:
                    raise end.error
            clean_exit = True
        finally:
            stopping.cancel()
            if arrival is not None:
                # cancelled while waiting (the consumer was stopped from outside):
                # a get left pending would be destroyed with the queue, and logged
                arrival.cancel()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            if not clean_exit:
                # a failed session is abandoned, not closed politely: with the reader
                # gone, websockets has paused reading on a full buffer and would never
                # see the host's close frame, so a close handshake could only time out.
                # nothing unread is lost: the cursor does not cover it.
                connection.transport.abort()

    async def _housekeeping(self, stop: asyncio.Event) -> None:
        """flush the cursor every interval; publish and log the counters less often."""
        next_stats = time.monotonic() + self.config.stats_seconds
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.cursor_flush_seconds)
            if stop.is_set():
                return  # the final flush belongs to `run`
            publish = time.monotonic() >= next_stats
            if publish:
                next_stats = time.monotonic() + self.config.stats_seconds
                logger.info("jetstream: %s", self._summary())
            await self._flush(final=False, publish_stats=publish)

    async def _flush(self, *, final: bool, publish_stats: bool = True) -> None:
        """write the cursor (and the counters); a Redis fault is logged once per
        streak and retried next time, never raised."""
        try:
            await self.cursor.flush()
            if publish_stats or final:
                await self._stats_store.publish(self.stats, cursor_time_us=self.cursor.done)
            # a Redis that came back empty between two commands raises nothing: look
            if await self._state_watch.check() and self._connection is not None:
                self._connection.transport.abort()  # the next session replays the loss
        except STORE_ERRORS as exc:
            if not self._flush_failing or final:
                logger.warning("could not flush the cursor (done=%s): %r", self.cursor.done, exc)
            self._flush_failing = True
            self.cursor.flushed = None
            return
        self._flush_failing = False

    def _summary(self) -> str:
        return self.stats.summary(cursor_lag_seconds=self.cursor_lag_seconds())


async def _read(connection: ClientConnection, queue: asyncio.Queue[bytes | _EndOfStream]) -> None:
    """websocket -> queue, until the connection ends (then one `_EndOfStream`)."""
    try:
        while True:
            # bytes, not str: orjson parses UTF-8 directly, and the size bound of
            # the decoder is then exact.
            await queue.put(await connection.recv(decode=False))
    except ConnectionClosed as closed:
        await queue.put(_EndOfStream(closed))


def _drain(
    first: bytes | _EndOfStream, queue: asyncio.Queue[bytes | _EndOfStream], limit: int
) -> tuple[list[bytes], _EndOfStream | None]:
    """the frames already waiting (at most `limit`), and the end marker if reached:
    frames received before a drop are still handled."""
    if isinstance(first, _EndOfStream):
        return [], first
    frames = [first]
    while len(frames) < limit and not queue.empty():
        item = queue.get_nowait()
        if isinstance(item, _EndOfStream):
            return frames, item
        frames.append(item)
    return frames, None
