"""`python -m bench jetstream`: how fast the consumer turns frames into docket tasks.

three measurements, each beside a baseline taken in the same run:

1. decode + filter on one core (CPU time, in memory, no I/O): `decode_frame` over
   every frame of a stream, beside stdlib `json.loads` and bare `orjson.loads` of
   the same bytes. goal: >= 20,000 frames/s.
2. end to end, list commits only: the replay server (in its own process, so it
   does not share the consumer's core) streams N playlist edits over loopback
   websockets; the real consumer decodes, validates, guards (Redis) and
   enqueues (docket on a real redis-server). every frame is an accepted change,
   so frames/s = recomputes enqueued/s. goal: >= 2,000/s. baseline: the same
   consumer handling one frame at a time with one `docket.replace` per frame.
3. end to end, a mixed stream: a blind host sending mostly frames that are not
   ours (identity/account events, other collections) with 10 % list commits.

the machine is shared, so figures vary run to run; the ratios to the baselines
are the steadier numbers.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path

import orjson
import redis.asyncio as aioredis
from docket import Docket
from rich.console import Console
from rich.table import Table

from bench import jetstream_wire
from bench.loopback.servers import RedisServer
from bench.timing import cpu_rate
from jetstream.config import ConsumerConfig
from jetstream.consumer import JetstreamConsumer
from jetstream.contract import forget_key, recompute_key
from jetstream.enqueue import Enqueued, EnqueueReport
from jetstream.events import ListChange, ListCommit
from jetstream.frames import FrameLimits, decode_frame
from jetstream.replay import ReplayFaults, ReplayServer
from worker.demo.wire import cid, did, tid
from worker.tasks.playlist import PLAYLIST_TASKS, forget_playlist, recompute_playlist

TRACKS_PER_PLAYLIST = 12
MIXED_LIST_SHARE = 0.10
START_TIME_US = 1_763_700_000_000_000


def list_commit_frame(playlist: int, revision: int, time_us: int, rng: random.Random) -> bytes:
    tracks = [
        f"at://{did(rng.randrange(500))}/fm.plyr.track/{tid(rng.randrange(10**9))}"
        for _ in range(TRACKS_PER_PLAYLIST)
    ]
    return orjson.dumps(
        {
            "did": did(10_000 + playlist),
            "time_us": time_us,
            "kind": "commit",
            "commit": {
                "rev": tid(revision * 1_000_000 + playlist),
                "operation": "update" if revision else "create",
                "collection": "fm.plyr.list",
                "rkey": tid(playlist),
                "record": {
                    "$type": "fm.plyr.list",
                    "name": f"playlist {playlist}",
                    "listType": "playlist",
                    "items": [
                        {"subject": {"uri": uri, "cid": cid(str(i))}}
                        for i, uri in enumerate(tracks)
                    ],
                    "createdAt": "2025-11-21T04:40:00.000Z",
                },
                "cid": cid(str(revision * 1_000_000 + playlist)),
            },
        }
    )


def other_frame(n: int, time_us: int) -> bytes:
    """what a blind host sends besides our lists: identity, account, someone's like."""
    actor = did(n % 50_000)
    if n % 3 == 0:
        return orjson.dumps(
            {
                "did": actor,
                "time_us": time_us,
                "kind": "identity",
                "identity": {"did": actor, "handle": f"u{n}.bsky.social", "seq": n},
            }
        )
    if n % 3 == 1:
        return orjson.dumps(
            {
                "did": actor,
                "time_us": time_us,
                "kind": "account",
                "account": {"active": True, "did": actor, "seq": n},
            }
        )
    return orjson.dumps(
        {
            "did": actor,
            "time_us": time_us,
            "kind": "commit",
            "commit": {
                "rev": tid(n),
                "operation": "create",
                "collection": "app.bsky.feed.like",
                "rkey": tid(n + 7),
                "record": {
                    "$type": "app.bsky.feed.like",
                    "subject": {
                        "uri": f"at://{actor}/app.bsky.feed.post/{tid(n)}",
                        "cid": cid(str(n)),
                    },
                    "createdAt": "2025-11-21T04:40:00.000Z",
                },
                "cid": cid(str(n + 1)),
            },
        }
    )


def list_stream(frames: int, playlists: int, seed: int = 1) -> list[bytes]:
    """every frame an accepted change: playlists edited round-robin, revs increasing."""
    rng = random.Random(seed)
    return [
        list_commit_frame(i % playlists, i // playlists, START_TIME_US + i * 10, rng)
        for i in range(frames)
    ]


def mixed_stream(frames: int, playlists: int, seed: int = 2) -> tuple[list[bytes], int]:
    """mostly frames that are not ours; returns the frames and how many are list commits."""
    rng = random.Random(seed)
    stream: list[bytes] = []
    commits = 0
    for i in range(frames):
        time_us = START_TIME_US + i * 10
        if rng.random() < MIXED_LIST_SHARE:
            stream.append(
                list_commit_frame(commits % playlists, commits // playlists, time_us, rng)
            )
            commits += 1
        else:
            stream.append(other_frame(i, time_us))
    return stream, commits


# --- 1. decode + filter ------------------------------------------------------------------


def decode_rates(frames: Sequence[bytes]) -> dict[str, float]:
    limits = FrameLimits()

    def ours() -> None:
        for frame in frames:
            decode_frame(frame, limits)

    def stdlib() -> None:
        for frame in frames:
            json.loads(frame)

    def bare_orjson() -> None:
        for frame in frames:
            orjson.loads(frame)

    return {
        "decode_frame": cpu_rate(ours, len(frames)),
        "json.loads": cpu_rate(stdlib, len(frames)),
        "orjson.loads": cpu_rate(bare_orjson, len(frames)),
    }


# --- 2./3. end to end ----------------------------------------------------------------------


class OneCallPerFrame:
    """the baseline: one `docket.replace` (or cancel + replace) per change, awaited
    one after the other."""

    def __init__(self, docket: Docket, *, debounce_seconds: float) -> None:
        self._docket = docket
        self._debounce_seconds = debounce_seconds

    async def enqueue(self, changes: Sequence[ListChange]) -> EnqueueReport:
        enqueued: list[Enqueued] = []
        for change in changes:
            now = time.time()
            uri = change.playlist_uri
            if isinstance(change, ListCommit):
                when = datetime.fromtimestamp(now + self._debounce_seconds, UTC)
                await self._docket.replace(recompute_playlist, when, recompute_key(uri))(
                    uri, change.cid, change.rev, list(change.track_uris)
                )
                enqueued.append(Enqueued("recompute", uri, change.rev, change.time_us, change.cid))
            else:
                await self._docket.cancel(recompute_key(uri))
                await self._docket.replace(
                    forget_playlist, datetime.fromtimestamp(now, UTC), forget_key(uri)
                )(uri)
                enqueued.append(Enqueued("forget", uri, change.rev, change.time_us))
        return EnqueueReport(enqueued, 0)


def _serve_replay(path: str, blind: bool, ready: Connection) -> None:
    """the replay server's own process: serve `path` until terminated."""

    async def serve() -> None:
        frames = ReplayServer.read_frames(Path(path))
        faults = ReplayFaults(ignore_wanted_collections=blind)
        async with ReplayServer(frames, faults=faults) as server:
            ready.send(server.url)
            await asyncio.Event().wait()

    asyncio.run(serve())


@dataclass(frozen=True)
class EndToEnd:
    frames_per_second: float
    recomputes: int
    seconds: float


async def end_to_end(
    url: str, redis_url: str, frames: int, *, one_per_frame: bool, deflate: bool = True
) -> EndToEnd:
    redis = aioredis.Redis.from_url(redis_url)
    await redis.flushall()
    config = ConsumerConfig(
        hosts=(url,),
        batch_frames=1 if one_per_frame else 256,
        stats_seconds=3600,
        v1_deflate=deflate,
    )
    async with Docket(name="bench-jetstream", url=redis_url) as docket:
        baseline = OneCallPerFrame(docket, debounce_seconds=config.debounce_seconds)
        consumer = JetstreamConsumer(
            config=config,
            redis=redis,
            docket=docket,
            tasks=PLAYLIST_TASKS,
            enqueuer=baseline if one_per_frame else None,
        )
        stop = asyncio.Event()
        started = time.perf_counter()
        task = asyncio.create_task(consumer.run(stop))
        while consumer.stats.frames < frames:
            if task.done():
                task.result()
                raise RuntimeError("the consumer stopped early")
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
        stop.set()
        await task
    await redis.aclose()
    return EndToEnd(frames / elapsed, consumer.stats.recomputes, elapsed)


def _start_replay(path: Path, *, blind: bool) -> tuple[multiprocessing.process.BaseProcess, str]:
    context = multiprocessing.get_context("spawn")
    receiving, sending = context.Pipe(duplex=False)
    process = context.Process(target=_serve_replay, args=(str(path), blind, sending), daemon=True)
    process.start()
    if not receiving.poll(30):
        process.terminate()
        raise RuntimeError("the replay server did not start")
    url: str = receiving.recv()
    return process, url


DECODERS = ("decode_frame", "json.loads", "orjson.loads")
BATCHED = "batched: MGET + replace_many pipeline, permessage-deflate"
PLAIN = "batched, no compression"
BASELINE = "one docket.replace per frame (baseline)"
PATHS = ((BATCHED, False, True), (PLAIN, False, False), (BASELINE, True, True))
STREAMS = ("list commits only", "mixed (10 % lists)")


def decode_table(streams: dict[str, list[bytes]]) -> tuple[Table, float]:
    """the decode table, and the slowest stream's rate through `decode_frame`."""
    table = Table(title="decode + filter, one core (CPU time, in memory)")
    table.add_column("stream")
    for decoder in DECODERS:
        table.add_column(f"{decoder} frames/s", justify="right")
    table.add_column("ours / json.loads", justify="right")
    slowest = float("inf")
    for name, stream in streams.items():
        rates = decode_rates(stream)
        slowest = min(slowest, rates["decode_frame"])
        table.add_row(
            name,
            *(f"{rates[decoder]:,.0f}" for decoder in DECODERS),
            f"{rates['decode_frame'] / rates['json.loads']:.2f}x",
        )
    return table, slowest


def end_to_end_runs(
    streams: dict[str, list[bytes]], frames: int, console: Console
) -> dict[tuple[str, str], EndToEnd]:
    """each stream through the real consumer, batched then one call per frame."""
    results: dict[tuple[str, str], EndToEnd] = {}
    with tempfile.TemporaryDirectory(prefix="plyr-bench-jetstream-") as scratch:
        directory = Path(scratch)
        redis_server = RedisServer(directory / "redis")
        redis_server.start()
        try:
            for index, (name, stream) in enumerate(streams.items()):
                blind = index == 1  # the mixed stream comes from a host that filters nothing
                path = directory / f"stream-{index}.jsonl"
                path.write_bytes(b"\n".join(stream) + b"\n")
                process, url = _start_replay(path, blind=blind)
                try:
                    for label, one_per_frame, deflate in PATHS:
                        with console.status(f"{name}, {label}..."):
                            results[(name, label)] = asyncio.run(
                                end_to_end(
                                    url,
                                    redis_server.url,
                                    frames,
                                    one_per_frame=one_per_frame,
                                    deflate=deflate,
                                )
                            )
                finally:
                    process.terminate()
                    process.join(10)
        finally:
            redis_server.stop()
    return results


def end_to_end_table(results: dict[tuple[str, str], EndToEnd], frames: int) -> Table:
    table = Table(
        title=f"end to end over loopback websockets, {frames:,} frames, real redis-server"
    )
    for column in ("stream", "path"):
        table.add_column(column)
    for column in ("frames/s", "recomputes enqueued", "recomputes/s"):
        table.add_column(column, justify="right")
    for (name, path), outcome in results.items():
        table.add_row(
            name,
            path,
            f"{outcome.frames_per_second:,.0f}",
            f"{outcome.recomputes:,}",
            f"{outcome.recomputes / outcome.seconds:,.0f}",
        )
    return table


def main(*, frames: int, playlists: int) -> None:
    console = Console()
    mixed, mixed_commits = mixed_stream(frames, playlists)
    streams = {STREAMS[0]: list_stream(frames, playlists), STREAMS[1]: mixed}

    with console.status("decoding..."):
        table, slowest_decode = decode_table(streams)
    console.print(table)

    results = end_to_end_runs(streams, frames, console)
    console.print(end_to_end_table(results, frames))

    batched = results[(STREAMS[0], BATCHED)]
    plain = results[(STREAMS[0], PLAIN)]
    baseline = results[(STREAMS[0], BASELINE)]
    console.print(
        f"goal >= 20,000 frames/s decoded and filtered on one core: "
        f"{slowest_decode:,.0f} (the slower stream)"
    )
    console.print(
        f"goal >= 2,000 recomputes/s enqueued when every frame is a playlist change: "
        f"{batched.recomputes / batched.seconds:,.0f} "
        f"({batched.frames_per_second / baseline.frames_per_second:.1f}x the "
        f"one-call-per-frame baseline; {batched.frames_per_second / plain.frames_per_second:.2f}x "
        f"the same without compression)"
    )
    console.print(f"mixed stream: {mixed_commits:,} of {frames:,} frames were list commits")
    jetstream_wire.main(console, mixed, list_stream(50, 50))
