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
- a host can fail without disconnecting: blind to plyr.fm's commits while the
  rest of the network flows (`jetstream.blind`). the connection is then
  abandoned on purpose, and the next host resumes from where plyr.fm's commits
  were last known complete, not from where identity events pushed the cursor.
  the reconcile loop can force the same rotation (`report_missed_versions`).
- the fleet may mix wires (`jetstream.subscription`): v1 `/subscribe`, or v2
  `subscribeEvents` with per-instance `seq` cursors, `CursorTooOld` refusals,
  dictionary zstd (`jetstream.dictionary`) and `#sync` markers.

a frame's content never raises out of here (`jetstream.frames` turns it into a
counted rejection); what propagates is only a programming error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import redis.asyncio as aioredis
from docket import Docket
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    ConnectionClosedOK,
    InvalidHandshake,
    InvalidStatus,
)
from websockets.typing import Subprotocol

from jetstream.backoff import Backoff, jittered_backoff
from jetstream.batch import BatchProcessor, FrameDecoder, MarkerSink, Observer
from jetstream.blind import BlindHostWatch
from jetstream.config import WEBSOCKET_MAX_SIZE, ConsumerConfig
from jetstream.contract import TaskFunctions
from jetstream.cursor import Cursor, CursorStore, rewound
from jetstream.dictionary import Dictionaries, DictionaryTimedOut
from jetstream.enqueue import Enqueuer, TaskSink
from jetstream.faults import FAULTS
from jetstream.flood import FloodControl
from jetstream.guard import RevGuard
from jetstream.keys import JetstreamKeys
from jetstream.reader import EndOfStream, drain, read_frames
from jetstream.state_watch import Loss, StateWatch
from jetstream.stats import ConsumerStats, StatsStore
from jetstream.subscription import (
    V2_SUBPROTOCOL,
    HostRotation,
    Wire,
    refusal_name,
    subscribe_url,
    wire_of,
)
from jetstream.task_records import TaskRecords

logger = logging.getLogger(__name__)

# the state store (our Redis, or docket's) is unavailable, or docket did not take
# a task (`EnqueueFailed` is transient): stop reading, back off, replay.
STORE_ERRORS = FAULTS.transient


# how long a polite close on shutdown may wait for the host's close frame.
CLOSE_TIMEOUT_SECONDS = 2.0


# why a connection is abandoned on purpose; the next one resumes from the blind
# watch's anchor on another host.
_T = TypeVar("_T")

BLIND_HOST = "blind_host"
MISSED_VERSIONS = "missed_versions"
# the consumer's own Redis (or docket's) failed: no host is to blame, none is left
STORE_UNAVAILABLE = "store_unavailable"
# a v2 instance sent a seq below the one we resumed from: its numbering started again
# (a restart, another instance behind the URL); resume by time, not from the old seq.
SEQ_BACKWARDS = "seq_backwards"
DICTIONARY_TIMEOUT = "dictionary_timeout"  # the host's dictionary outran its deadline


class _Rotate(Exception):
    """leave this host now (`reason` is BLIND_HOST or MISSED_VERSIONS)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
        markers: MarkerSink | None = None,
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
        flood = FloodControl(config.flood)  # list changes and track deletes alike
        if enqueuer is None:
            if tasks is None:
                raise ValueError("a consumer needs the worker's task functions, or an enqueuer")
            enqueuer = Enqueuer(
                docket,
                tasks=tasks,
                debounce_seconds=config.debounce_seconds,
                clock=clock,
                flood=flood,
            )
        self._processor = BatchProcessor(
            limits=config.limits,
            guard=RevGuard(redis, self.keys, config.rev_ttl_seconds),
            enqueuer=enqueuer,
            cursor=self.cursor,
            stats=self.stats,
            observer=observer,
            clock=clock,
            markers=markers,
            flood=flood,
            records=TaskRecords(docket, flood, clock=clock),
        )
        self.blind = BlindHostWatch(config.blind_host_seconds)
        self._dictionaries = Dictionaries(
            enabled=config.v2_zstd, timeout_seconds=config.open_timeout_seconds
        )
        self._rotate_now = asyncio.Event()
        self._rotate_reason = MISSED_VERSIONS
        self._progressed = False
        self._flush_failing = False
        self._state_watch = StateWatch(redis, self.keys, ttl_seconds=config.rev_ttl_seconds)
        self._connection: ClientConnection | None = None

    def cursor_lag_seconds(self) -> float | None:
        """how far the done position is behind now (None before the first event)."""
        done = self.cursor.done
        return None if done is None else max(0.0, self._clock() - done / 1_000_000)

    def report_missed_versions(self, *, since_time_us: int | None = None, count: int = 1) -> None:
        """the reconcile loop found `count` versions the firehose never delivered while
        connected (committed after `since_time_us`, e.g. the TID time of the oldest
        missed rev): the current host is treated as blind. the connection is left
        and the next host resumes from before them."""
        self.stats.missed_version_reports += count
        self.blind.missed(since_time_us)
        if self._connection is None:
            # between connections: the next one already resumes from the anchor.
            self._rewind_to_anchor()
            return
        self._rotate_reason = MISSED_VERSIONS
        self._rotate_now.set()

    def _rewind_to_anchor(self) -> int | None:
        anchor = self.blind.rotated()
        if anchor is not None:
            self.cursor.undo_after(anchor)
        return anchor

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
            if reason in (BLIND_HOST, MISSED_VERSIONS):
                self._rotated(reason)
            else:
                self.stats.reconnects[reason] += 1
            if self._progressed:
                delays = self._backoff()  # the connection did work: a new failure streak
            delay = next(delays)
            if reason == STORE_UNAVAILABLE:
                # Redis's fault, not the host's: rotating would blame a healthy host
                # and rewind for a host change. the same host again once Redis answers.
                changed_host = False
                logger.warning(
                    "Redis (%s) unavailable: not reading Jetstream; trying again in %.2fs",
                    _redis_address(self._redis),
                    delay,
                )
            else:
                changed_host = self._rotation.advance()
                logger.warning(
                    "jetstream connection ended (%s); reconnecting to %s in %.2fs",
                    reason,
                    self._rotation.current,
                    delay,
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    def _rotated(self, reason: str) -> None:
        """counted and logged once per rotation; the cursor goes back to the anchor."""
        self.stats.rotations[reason] += 1
        silent = self.blind.silent_seconds()  # before the anchor moves
        host = self._rotation.current
        anchor = self._rewind_to_anchor()
        why = (
            f"looks blind: no plyr.fm commit for {silent:.0f}s of stream while other frames flowed"
            if reason == BLIND_HOST
            else "missed versions (reported by the reconcile loop)"
        )
        logger.warning(
            "jetstream host %s %s; rotating, resuming from %s (the last plyr.fm position)",
            host,
            why,
            anchor,
        )

    async def _session_outcome(self, stop: asyncio.Event, changed_host: bool) -> str:
        """run one connection; the reason it ended (classified, counted by the caller)."""
        try:
            await self._session(stop, changed_host)
        except _Rotate as rotation:
            return rotation.reason
        except DictionaryTimedOut as exc:
            self.stats.dictionary_unavailable += 1
            logger.warning("leaving jetstream host %s: %s", self._rotation.current, exc)
            return DICTIONARY_TIMEOUT
        except InvalidStatus as exc:
            return self._refused(exc)
        except STORE_ERRORS as exc:
            self.stats.store_errors += 1
            # Redis may have come back empty: make the next flush rewrite the cursor.
            self.cursor.mark_unflushed()
            logger.info("state store unavailable: %r", exc)
            return STORE_UNAVAILABLE
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

    def _refused(self, error: InvalidStatus) -> str:
        name = refusal_name(error)
        host = self._rotation.current
        if name == "CursorTooOld":
            # below the instance's floor: resume by time, which the host clamps to
            # its oldest event. the gap (if any) is the reconcile loop's to heal.
            self.stats.cursor_too_old += 1
            self.cursor.forget_seq()
            logger.warning("jetstream %s: cursor too old, resuming from its oldest event", host)
            return "cursor_too_old"
        if name == "UnknownZstdDictionary":
            self._dictionaries.retire(host)
            logger.info("jetstream %s retired our zstd dictionary; fetching it again", host)
            return "dictionary_retired"
        logger.info("jetstream handshake refused: %r", error)
        return "refused"

    async def _session(self, stop: asyncio.Event, changed_host: bool) -> None:
        position = await self.cursor.resume_position()
        await self._redis.ping()  # never read a frame we could not acknowledge
        await self._state_watch.check()
        loss = self._state_watch.take_loss()
        if loss is Loss.TOTAL and position is not None:
            # what was enqueued is gone with Redis: that work is not done any more
            self.cursor.undo_after(rewound(position, self.config.lost_state_rewind_seconds))
            position = self.cursor.done
            logger.warning(
                "Redis lost the consumer's state (cursor, revs, queued tasks, cache): "
                "replaying the last %.0fs of list commits",
                self.config.lost_state_rewind_seconds,
            )
        elif loss is Loss.PARTIAL and position is not None:
            # Redis went back in time (an AOF's last second, a lagging replica): the
            # cursor it still holds is the last position known durable (see
            # jetstream.state_watch); what came after is replayed
            durable = await self.cursor.store.load()
            fallback = rewound(position, self.config.lost_state_rewind_seconds)
            self.cursor.undo_after(durable if durable is not None else fallback)
            position = self.cursor.done
            self.stats.partial_losses += 1
            logger.warning(
                "Redis came back with an older copy of its data: resuming from %s, the "
                "last position it still holds",
                position,
            )
        host = self._rotation.current
        wire = wire_of(host)
        self.cursor.instance = host if wire is Wire.V2 else None
        self.blind.connected(position)
        rewind = (
            self.config.rotation_rewind_seconds
            if changed_host
            else self.config.cursor_rewind_seconds
        )
        start = self.cursor.start_for(host if wire is Wire.V2 else None, position, rewind)
        fetching = self._dictionaries.decoder(host, wire, self.config.limits)
        decoder = await _unless_stopped(stop, fetching)
        if decoder is None:
            return  # stopped while the host's dictionary was on its way
        decode, dictionary_id, problem = decoder
        if problem is not None:
            self.stats.dictionary_unavailable += 1
            logger.warning("no zstd dictionary from %s, reading it uncompressed: %s", host, problem)
        url = subscribe_url(
            host, self.config.limits.wanted_collections, start, zstd_dictionary=dictionary_id
        )
        async with connect(
            url,
            open_timeout=self.config.open_timeout_seconds,
            max_size=WEBSOCKET_MAX_SIZE,
            # v1: permessage-deflate (context kept across frames) sends 0.29x the
            # bytes for 1.2x the decode CPU; v2 hosts never negotiate it (dictionary
            # zstd is their scheme). measured with `python -m bench jetstream`.
            compression="deflate" if wire is Wire.V1 and self.config.v1_deflate else None,
            subprotocols=[Subprotocol(V2_SUBPROTOCOL)] if wire is Wire.V2 else None,
            # bounds the polite close on shutdown; a busy stream may have filled the
            # library's buffer, and then the host's close frame is never read.
            close_timeout=CLOSE_TIMEOUT_SECONDS,
        ) as connection:
            self.stats.connected_host = host
            self.stats.connected_wire = wire.value
            self._connection = connection
            self._rotate_now.clear()
            logger.info("jetstream connected to %s (%s) from cursor %s", host, wire, start)
            try:
                await self._pump(connection, stop, decode)
            finally:
                self.stats.connected_host = None
                self.stats.connected_wire = None
                self._connection = None

    async def _pump(
        self, connection: ClientConnection, stop: asyncio.Event, decode: FrameDecoder
    ) -> None:
        queue: asyncio.Queue[bytes | EndOfStream] = asyncio.Queue(maxsize=self.config.batch_frames)
        reader = asyncio.create_task(read_frames(connection, queue))
        stopping = asyncio.create_task(stop.wait())
        rotating = asyncio.create_task(self._rotate_now.wait())
        arrival: asyncio.Task[bytes | EndOfStream] | None = None
        clean_exit = False
        try:
            while not stop.is_set():
                if self._rotate_now.is_set():
                    raise _Rotate(self._rotate_reason)
                if queue.empty():
                    arrival = asyncio.create_task(queue.get())
                    await asyncio.wait(
                        {arrival, stopping, rotating}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if not arrival.done():
                        arrival.cancel()  # stopping or rotating while idle: no frame in hand
                        continue
                    first = arrival.result()
                else:
                    first = queue.get_nowait()
                frames, end = drain(first, queue, self.config.batch_frames)
                if frames:
                    positions = await self._processor.process(frames, decode)
                    self._progressed = True
                    if self.cursor.take_seq_backwards():  # counted as reconnects:seq_backwards
                        logger.warning(
                            "jetstream %s sent a seq below ours: its numbering started "
                            "again; resuming by time",
                            self._rotation.current,
                        )
                        raise _Rotate(SEQ_BACKWARDS)
                    self._watch(positions.newest_time_us, positions.plyr_time_us)
                if end is not None:
                    raise end.error
            clean_exit = True
        finally:
            stopping.cancel()
            rotating.cancel()
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

    def _watch(self, newest_time_us: int | None, plyr_time_us: int | None) -> None:
        """feed the blind watch a handled batch; leave the host if it looks blind."""
        watch = self.blind
        watch.observe(newest_time_us, plyr_time_us)
        if not watch.enabled:
            return
        # Redis is told no more than what plyr.fm's commits are known complete up to.
        self.cursor.hold = watch.anchor_us
        if watch.is_blind():
            raise _Rotate(BLIND_HOST)

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
                self.stats.plyr_anchor_time_us = self.blind.anchor_us
                await self._stats_store.publish(
                    self.stats,
                    cursor_time_us=self.cursor.done,
                    every_seconds=self.config.stats_seconds,
                    stopped=final,
                )
            # a Redis that came back empty between two commands raises nothing: look
            if await self._state_watch.check() and self._connection is not None:
                self._connection.transport.abort()  # the next session replays the loss
        except STORE_ERRORS as exc:
            if not self._flush_failing or final:
                logger.warning("could not flush the cursor (done=%s): %r", self.cursor.done, exc)
            self._flush_failing = True
            self.cursor.mark_unflushed()
            return
        self._flush_failing = False

    def _summary(self) -> str:
        return self.stats.summary(cursor_lag_seconds=self.cursor_lag_seconds())


async def _unless_stopped(stop: asyncio.Event, work: Awaitable[_T]) -> _T | None:
    """`work`'s result, or None as soon as `stop` is set (the work is cancelled)."""
    working = asyncio.ensure_future(work)
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({working, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not working.done():
            working.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await working
    return None if working.cancelled() else working.result()


def _redis_address(redis: aioredis.Redis) -> str:
    """host:port/db of the client's server, for a log line (never its password)."""
    kwargs = getattr(getattr(redis, "connection_pool", None), "connection_kwargs", {})
    if "path" in kwargs:
        return f"unix:{kwargs['path']}"
    if "host" not in kwargs:
        return "in-process"
    return f"{kwargs['host']}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
