"""the consumer's rows of `python -m bench abuse`'s components table (issue 23,
findings 7 and 8): the real `JetstreamConsumer` over real websockets from the replay
server, docket on the real redis-server (no worker runs: what docket holds, and when
each task falls due, is read back with docket's own snapshot).

- 5,000 `fm.plyr.track` deletes from one account, then a legitimate edit: when the
  edit's recompute falls due, and how many withdrawals are due before it;
- a v2 host whose dictionary endpoint drips a byte at a time, listed before a healthy
  one: how long until the edit on the healthy host is enqueued;
- a v2 instance that restarts numbering its `seq` from 0 behind the same URL, an edit
  made while the consumer was away: delivered, or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Final

import orjson
import redis.asyncio as aioredis
from docket import Docket

from bench.abuse.component_row import ComponentRow, redis_db
from jetstream import Enqueued, JetstreamConsumer, ReplayServer
from jetstream.config import ConsumerConfig
from jetstream.contract import recompute_key
from jetstream.flood import FloodLimits
from jetstream.frames import FrameLimits
from jetstream.subscription import V2_SUBSCRIBE_PATH
from worker.demo.wire import cid, did, list_commit, tid, track_uri
from worker.tasks.markers import WorkerMarkers
from worker.tasks.playlist import PLAYLIST_TASKS
from worker.tasks.withdrawals import withdrawal_handler

SETTLE: Final = 2.0  # the production debounce (DEBOUNCE_SECONDS)
DELETES: Final = 5_000
T0_US: Final = 1_763_700_000_000_000
FLOODER, EDITOR = did(7), did(8)
DRIP_SECONDS: Final = 0.2  # under any per-read timeout: only a total deadline ends it
OPEN_TIMEOUT: Final = 1.0  # the consumer's handshake and dictionary deadline, scaled (prod. 10 s)
WITHIN: Final = 60.0  # what any run here is given before it counts as never


def _backoff() -> Iterator[float]:
    while True:
        yield 0.05


def _config(hosts: tuple[str, ...], **options: object) -> ConsumerConfig:
    settings: dict[str, object] = {
        "limits": FrameLimits(),
        "debounce_seconds": SETTLE,
        "cursor_flush_seconds": 0.05,
        "cursor_rewind_seconds": 1.0,
        "stats_seconds": 0.5,
        "open_timeout_seconds": OPEN_TIMEOUT,
    }
    settings.update(options)
    return ConsumerConfig(hosts, **settings)  # type: ignore[arg-type]


async def _until(predicate: Callable[[], bool], within: float = WITHIN) -> bool:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


@dataclasses.dataclass
class _Running:
    consumer: JetstreamConsumer
    enqueued: list[Enqueued]
    docket: Docket


@asynccontextmanager
async def _consumer(
    redis_url: str, config: ConsumerConfig, *, clock: Callable[[], float] = time.time
) -> AsyncIterator[_Running]:
    """a consumer on a fresh Redis database, with the production marker sink."""
    redis = aioredis.Redis.from_url(redis_url)
    await redis.flushdb()
    enqueued: list[Enqueued] = []
    try:
        async with Docket(name="bench-abuse-stream", url=redis_url) as docket:
            consumer = JetstreamConsumer(
                config=config,
                redis=redis,
                docket=docket,
                tasks=PLAYLIST_TASKS,
                clock=clock,
                backoff=_backoff,
                observer=enqueued.append,
                markers=WorkerMarkers(withdrawal_handler(docket)),
            )
            stop = asyncio.Event()
            task = asyncio.create_task(consumer.run(stop))
            try:
                yield _Running(consumer, enqueued, docket)
            finally:
                stop.set()
                await asyncio.wait_for(task, 10)
    finally:
        await redis.aclose()


def _edit(owner: str, name: str, time_us: int) -> bytes:
    return list_commit(
        owner=owner,
        rkey=tid(1),
        rev=tid(1),
        record_cid=cid(name),
        tracks=[track_uri(1)],
        time_us=time_us,
    )


def _track_delete(n: int) -> bytes:
    rkey = track_uri(n).rsplit("/", 1)[1]
    commit = {"rev": tid(n + 1), "operation": "delete", "collection": "fm.plyr.track", "rkey": rkey}
    frame = {"did": FLOODER, "time_us": T0_US + n, "kind": "commit", "commit": commit}
    return orjson.dumps(frame)


@dataclasses.dataclass(frozen=True)
class _Deletes:
    seconds: float  # to read every frame
    edit_delay: float  # the edit's recompute: due this long after it arrived
    ahead: int  # withdrawals due before the edit's recompute
    pending: int
    shed: int


async def _deletes(redis_url: str, deletes: int) -> _Deletes:
    frames = [_track_delete(n) for n in range(deletes)]
    frames.append(_edit(EDITOR, "legit", T0_US + deletes))
    now = time.time()  # the consumer's clock stands here: every `when` reads exactly
    async with ReplayServer(frames) as replay:
        started = time.monotonic()
        async with _consumer(redis_url, _config((replay.url,)), clock=lambda: now) as running:
            if not await _until(lambda: running.consumer.stats.frames == len(frames)):
                raise TimeoutError("the consumer did not read the deletes")
            seconds = time.monotonic() - started
            shed = running.consumer.stats.skipped["flood_shed"]
            snapshot = await running.docket.snapshot()
    whens = {execution.key: execution.when.timestamp() for execution in snapshot.future}
    edit_when = whens.pop(recompute_key(f"at://{EDITOR}/fm.plyr.list/{tid(1)}"))
    ahead = sum(when <= edit_when for when in whens.values())
    return _Deletes(seconds, edit_when - now, ahead, len(whens), shed)


async def track_deletes(redis_url: str, seconds: float) -> ComponentRow:
    quiet = await _deletes(redis_db(redis_url, 1), 0)
    flood = await _deletes(redis_db(redis_url, 1), DELETES)
    limits = FloodLimits()
    most_ahead = limits.burst + int(SETTLE / limits.interval)
    ok = (
        abs(flood.edit_delay - SETTLE) < 0.01
        and flood.ahead <= most_ahead
        and flood.pending <= limits.max_pending + limits.burst + 1
    )
    return ComponentRow(
        name="5,000 track deletes (consumer)",
        attack=f"{DELETES:,} fm.plyr.track deletes, one DID, then a legit edit",
        legit_quiet=f"edit due in {quiet.edit_delay:.1f} s, {quiet.ahead} ahead",
        legit_attack=f"edit due in {flood.edit_delay:.1f} s, {flood.ahead} withdrawals ahead",
        resource=f"read in {flood.seconds:.1f} s (quiet {quiet.seconds:.1f} s); "
        f"{flood.pending - 1} withdrawals pending, {flood.shed:,} shed",
        bound=f"edit due in {SETTLE:g} s, <= {most_ahead} ahead, "
        f"<= {limits.max_pending + limits.burst} pending",
        ok=ok,
    )


@asynccontextmanager
async def _dripping_host() -> AsyncIterator[str]:
    """a v2 host whose every HTTP answer (the dictionary) drips a byte at a time."""
    writers: set[asyncio.StreamWriter] = set()

    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.add(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n")
            while not writer.is_closing():
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(DRIP_SECONDS)
        writer.close()

    server = await asyncio.start_server(drip, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}{V2_SUBSCRIBE_PATH}"
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


async def _time_to_edit(redis_url: str, hosts: Callable[[str], tuple[str, ...]]) -> float | None:
    """seconds from the consumer's start to the healthy host's edit enqueued."""
    frame = _edit(EDITOR, "drip", int(time.time() * 1e6))
    async with ReplayServer([frame], seq_base=10) as healthy:
        started = time.monotonic()
        async with _consumer(redis_url, _config(hosts(healthy.url_v2), v2_zstd=True)) as running:
            if not await _until(lambda: bool(running.enqueued), within=20.0):
                return None
            return time.monotonic() - started


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


async def v2_dripping_dictionary(redis_url: str, seconds: float) -> ComponentRow:
    db = redis_db(redis_url, 2)
    quiet = await _time_to_edit(db, lambda healthy: (healthy,))
    async with _dripping_host() as dripping:
        drip = await _time_to_edit(db, lambda healthy: (dripping, healthy))
    bound = OPEN_TIMEOUT + 3.0  # the deadline, then the rotation's backoff and the handshake
    return ComponentRow(
        name="v2 host drips its dictionary",
        attack=f"dictionary a byte per {DRIP_SECONDS:g} s, listed first",
        legit_quiet=f"edit enqueued after {_seconds(quiet)}",
        legit_attack=f"edit enqueued after {_seconds(drip)}",
        resource=f"consumer held {_seconds(None if drip is None else drip - (quiet or 0))} more",
        bound=f"enqueued within {bound:g} s (open timeout {OPEN_TIMEOUT:g} s, scaled)",
        ok=quiet is not None and drip is not None and drip <= bound,
    )


async def _restart(redis_url: str, seq_base: int) -> tuple[bool, int]:
    """an instance goes down and comes back behind the same URL numbering from
    `seq_base`, with an edit made while the consumer was away; once the consumer is
    back, a later edit: (the missed edit delivered, seq_backwards noticed)."""
    now = int(time.time() * 1e6)
    first_edit = _edit(did(40), "before", now)
    first = ReplayServer([first_edit], seq_base=5_000)
    async with first, _consumer(redis_url, _config((first.url_v2,), v2_zstd=True)) as running:
        if not await _until(lambda: len(running.enqueued) == 1, within=20.0):
            return False, 0
        port = first.port
        await first.__aexit__(None, None, None)
        missed = _edit(did(41), "while away", now + 1_000_000)
        restarted = ReplayServer([first_edit, missed], port=port, seq_base=seq_base)
        async with restarted:
            await _until(lambda: len(restarted.connections) >= 1, within=20.0)
            restarted.append([_edit(did(42), "later", now + 2_000_000)])
            owners = (f"at://{did(41)}/", f"at://{did(42)}/")
            delivered = await _until(
                lambda: all(
                    any(e.playlist_uri.startswith(owner) for e in running.enqueued)
                    for owner in owners
                ),
                within=15.0,
            )
        return delivered, running.consumer.stats.reconnects["seq_backwards"]


async def v2_seq_backwards(redis_url: str, seconds: float) -> ComponentRow:
    db = redis_db(redis_url, 3)
    quiet, _ = await _restart(db, 5_000)  # the same numbering: an ordinary restart
    backwards, noticed = await _restart(db, 0)
    return ComponentRow(
        name="v2 seq goes backwards",
        attack="instance restarts behind its URL, seq from 0",
        legit_quiet=f"edits made while away and after: {'delivered' if quiet else 'LOST'}",
        legit_attack=f"edits made while away and after: {'delivered' if backwards else 'LOST'}",
        resource=f"seq_backwards noticed {noticed}x",
        bound="delivered",
        ok=quiet and backwards,
    )
