"""`python -m bench jetstream`, the wire half: v1 against v2, plain against compressed,
and the blind host.

three measurements, each beside a baseline taken in the same run:

1. decode on one core (CPU time, in memory): the same stream as v1 frames
   (`decode_frame`), v2 frames (`decode_v2_frame`) and v2 dictionary-zstd frames
   (decompress + decode); baseline: bare `orjson.loads` of the v1 bytes.
2. bytes per frame of each shape the subscription receives (a list commit from
   the samples, another plyr.fm commit, identity, account), per wire: v1 JSON,
   v2 JSON, v2 dictionary zstd (a dictionary trained on *other* frames of the
   same shapes, as a host trains on its traffic), and v1 with a deflate stream
   per connection (what permessage-deflate with context takeover would send);
   then bytes/hour for the subscription at the assumed rates below.
3. the blind host: a consumer whose first host is blind (no plyr.fm commit,
   identity events at real-time pace) while the healthy second host holds N
   list commits; seconds from connecting to the last of them enqueued, beside
   the same consumer on the healthy host alone, with a scaled-down window.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import statistics
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import orjson
import redis.asyncio as aioredis
from docket import Docket
from rich.console import Console
from rich.table import Table

from bench.loopback.servers import RedisServer
from bench.samples import story_frames
from bench.timing import cpu_rate
from jetstream.config import ConsumerConfig
from jetstream.consumer import JetstreamConsumer
from jetstream.enqueue import Enqueued
from jetstream.frames import FrameLimits, decode_frame
from jetstream.frames_v2 import decode_v2_frame
from jetstream.keys import JetstreamKeys
from jetstream.replay import ReplayFaults, ReplayServer
from jetstream.replay_v2 import render_v2
from jetstream.zstd_frames import FrameCompressor, FrameDecompressor, load_dictionary
from jetstream.zstd_frames import train_dictionary as train
from worker.tasks.playlist import PLAYLIST_TASKS

# assumed rates for the bytes/hour estimate (not measured here; the machine has no
# network): the rest of the network's identity and account events, which every
# subscription receives on both wires, and plyr.fm's own commits on a busy hour.
IDENTITY_PER_SECOND = 10.0
PLYR_COMMITS_PER_HOUR = 60.0


def _v2(frames: Sequence[bytes]) -> list[bytes]:
    return [render_v2(frame, n + 1) or frame for n, frame in enumerate(frames)]


def _dictionary_for(frames: Sequence[bytes]) -> bytes:
    """trained on a separate sample of the same shapes (every other frame, shifted)."""
    return train(_v2(frames[1::2]), size=16 * 1024)


def _each(decode: Callable[[bytes], object], frames: Sequence[bytes]) -> Callable[[], None]:
    def run() -> None:
        for frame in frames:
            decode(frame)

    return run


def decode_table(stream: Sequence[bytes]) -> Table:
    limits = FrameLimits()
    v2_frames = _v2(stream)
    dictionary = load_dictionary(_dictionary_for(stream))
    compressed = [FrameCompressor(dictionary).compress(frame) for frame in v2_frames]
    decompressor = FrameDecompressor(dictionary)
    count = len(stream)
    deflated = _deflated(stream)
    inflate = zlib.decompressobj(-15)

    def inflate_and_decode(frame: bytes) -> object:
        return decode_frame(inflate.decompress(frame + b"\x00\x00\xff\xff"), limits)

    rates = {
        "orjson.loads, v1 (baseline)": cpu_rate(_each(orjson.loads, stream), count),
        "v1 decode_frame": cpu_rate(_each(lambda f: decode_frame(f, limits), stream), count),
        "v2 decode_v2_frame": cpu_rate(
            _each(lambda f: decode_v2_frame(f, limits), v2_frames), count
        ),
        "v2 zstd: decompress + decode": cpu_rate(
            _each(lambda f: decode_v2_frame(f, limits, decompressor), compressed), count
        ),
        # one round only: the inflate stream's context cannot be replayed
        "v1 deflate stream: inflate + decode": cpu_rate(
            _each(inflate_and_decode, deflated), count, rounds=1
        ),
    }
    baseline = rates["orjson.loads, v1 (baseline)"]
    table = Table(title=f"decode per wire, one core (CPU time), {count:,} mixed frames")
    table.add_column("path")
    table.add_column("frames/s", justify="right")
    table.add_column("/ baseline", justify="right")
    for name, rate in rates.items():
        table.add_row(name, f"{rate:,.0f}", f"{rate / baseline:.2f}x")
    return table


_B32 = "234567abcdefghijklmnopqrstuvwxyz"


def _random_b32(rng: random.Random, width: int) -> str:
    return "".join(rng.choice(_B32) for _ in range(width))


def _scrambled(frame: bytes, rng: random.Random) -> bytes:
    """a sample frame with fresh identifiers (repo, keys, revs, CIDs, track URIs), so a
    compressor sees the entropy of real traffic, not the same sample again."""
    message = orjson.loads(frame)
    repo = "did:plc:" + _random_b32(rng, 24)
    message["did"] = repo
    message["time_us"] = 1_763_700_000_000_000 + rng.randrange(10**12)
    for kind in ("identity", "account"):
        if isinstance(message.get(kind), dict):
            message[kind]["did"] = repo
            message[kind]["seq"] = rng.randrange(10**10)
            if "handle" in message[kind]:
                message[kind]["handle"] = f"{_random_b32(rng, rng.randrange(4, 14))}.bsky.social"
    commit = message.get("commit")
    if isinstance(commit, dict):
        commit["rkey"] = "3m" + _random_b32(rng, 11)
        commit["rev"] = "3m" + _random_b32(rng, 11)
        if "cid" in commit:
            commit["cid"] = "bafyrei" + _random_b32(rng, 52)
        for item in (commit.get("record") or {}).get("items", []):
            track_repo = "did:plc:" + _random_b32(rng, 24)
            item["subject"]["uri"] = f"at://{track_repo}/fm.plyr.track/3m{_random_b32(rng, 11)}"
            item["subject"]["cid"] = "bafyrei" + _random_b32(rng, 52)
    return orjson.dumps(message)


def _shapes() -> dict[str, list[bytes]]:
    """frames of each shape the subscription receives, 400 of each, from the samples'
    shapes with fresh identifiers."""
    story = [line.encode() for line in story_frames()]
    rng = random.Random(7)
    picks = {
        "list commit": [f for f in story if b'"fm.plyr.list"' in f and b'"create"' in f],
        "other plyr.fm commit": [f for f in story if b'"fm.plyr.track"' in f],
        "identity": [f for f in story if b'"kind":"identity"' in f],
        "account": [f for f in story if b'"kind":"account"' in f],
    }
    return {
        name: [_scrambled(rng.choice(frames), rng) for _ in range(400)]
        for name, frames in picks.items()
    }


def _deflated(frames: Sequence[bytes]) -> list[bytes]:
    """what permessage-deflate with context takeover sends: one deflate stream, a sync
    flush per message, the flush's 4-byte tail dropped (RFC 7692)."""
    stream = zlib.compressobj(6, zlib.DEFLATED, -15)
    return [(stream.compress(frame) + stream.flush(zlib.Z_SYNC_FLUSH))[:-4] for frame in frames]


def _deflate_sizes(frames: Sequence[bytes]) -> list[int]:
    return [len(message) for message in _deflated(frames)]


def sizes_table() -> tuple[Table, dict[str, float]]:
    shapes = _shapes()
    # trained on other frames of the same shapes than the ones measured
    measured = itertools.chain.from_iterable(shapes.values())
    training = [_scrambled(f, random.Random(n)) for n, f in enumerate(measured)]
    dictionary = load_dictionary(train(_v2(training), size=16 * 1024))
    compressor = FrameCompressor(dictionary)
    table = Table(title="bytes per frame, by shape and wire (mean)")
    for column in ("shape", "v1 JSON", "v2 JSON", "v2 zstd dict", "v1 deflate stream"):
        table.add_column(column, justify="left" if column == "shape" else "right")
    means: dict[str, dict[str, float]] = {}
    for name, frames in shapes.items():
        v2_frames = _v2(frames)
        row = {
            "v1": statistics.fmean(len(f) for f in frames),
            "v2": statistics.fmean(len(f) for f in v2_frames),
            "v2z": statistics.fmean(len(compressor.compress(f)) for f in v2_frames),
            "v1d": statistics.fmean(_deflate_sizes(frames)),
        }
        means[name] = row
        table.add_row(name, *(f"{row[key]:,.0f}" for key in ("v1", "v2", "v2z", "v1d")))
    per_hour = {
        key: 3600 * IDENTITY_PER_SECOND * (means["identity"][key] + means["account"][key]) / 2
        + PLYR_COMMITS_PER_HOUR
        * (means["list commit"][key] + means["other plyr.fm commit"][key])
        / 2
        for key in ("v1", "v2", "v2z", "v1d")
    }
    return table, per_hour


def _fixed_backoff() -> Iterator[float]:
    while True:
        yield 0.05


async def _time_to_last(
    hosts: tuple[str, ...], redis_url: str, expected: int, window: float, cursor: int
) -> float:
    redis = aioredis.Redis.from_url(redis_url)
    await redis.flushall()
    config = ConsumerConfig(hosts=hosts, blind_host_seconds=window, stats_seconds=3600)
    await redis.set(JetstreamKeys("fm.plyr.list").cursor, str(cursor))
    enqueued: list[Enqueued] = []
    async with Docket(name="bench-jetstream-blind", url=redis_url) as docket:
        consumer = JetstreamConsumer(
            config=config,
            redis=redis,
            docket=docket,
            tasks=PLAYLIST_TASKS,
            observer=enqueued.append,
            backoff=_fixed_backoff,
        )
        stop = asyncio.Event()
        started = time.perf_counter()
        task = asyncio.create_task(consumer.run(stop))
        while len(enqueued) < expected:
            if task.done():
                task.result()
                raise RuntimeError("the consumer stopped early")
            await asyncio.sleep(0.002)
        elapsed = time.perf_counter() - started
        stop.set()
        await task
    await redis.aclose()
    return elapsed


async def blind_host_case(
    missed: Sequence[bytes], redis_url: str, window: float
) -> tuple[float, float]:
    """(seconds with a blind first host, seconds on the healthy host alone)."""
    first = orjson.loads(missed[0])["time_us"]
    # the blind host's trickle: 50 identity events a second, in real time.
    blind = ReplayFaults(blind=True, blind_interval_seconds=0.02)
    async with (
        ReplayServer(missed, faults=blind) as blind_host,
        ReplayServer(missed, seq_base=1, zstd_dictionary=_dictionary_for(missed)) as healthy,
    ):
        with_blind = await _time_to_last(
            (blind_host.url, healthy.url_v2), redis_url, len(missed), window, first - 1
        )
        alone = await _time_to_last((healthy.url_v2,), redis_url, len(missed), window, first - 1)
    return with_blind, alone


def blind_table(missed: Sequence[bytes], window: float) -> Table:
    with tempfile.TemporaryDirectory(prefix="plyr-bench-blind-") as scratch:
        server = RedisServer(Path(scratch) / "redis")
        server.start()
        try:
            with_blind, alone = asyncio.run(blind_host_case(missed, server.url, window))
        finally:
            server.stop()
    table = Table(
        title=f"blind first host: {len(missed)} list commits it withheld, "
        f"window {window:.1f} s of stream (production: JETSTREAM_BLIND_HOST_SECONDS)"
    )
    for column in ("run", "seconds to the last missed version enqueued"):
        table.add_column(column, justify="left" if column == "run" else "right")
    table.add_row("healthy host alone (baseline)", f"{alone:.2f}")
    table.add_row("blind host first, then the healthy one", f"{with_blind:.2f}")
    table.add_row("beyond the window (detection + rotation + replay)", f"{with_blind - window:.2f}")
    return table


def main(console: Console, mixed: Sequence[bytes], list_commits: Sequence[bytes]) -> None:
    with console.status("decoding per wire..."):
        console.print(decode_table(mixed))
    table, per_hour = sizes_table()
    console.print(table)
    console.print(
        f"bytes/hour for the subscription at an assumed {IDENTITY_PER_SECOND:.0f} identity/"
        f"account events/s and {PLYR_COMMITS_PER_HOUR:.0f} plyr.fm commits/h: "
        + ", ".join(
            f"{label} {per_hour[key] / 1e6:.1f} MB"
            for key, label in (
                ("v1", "v1"),
                ("v2", "v2"),
                ("v2z", "v2 zstd"),
                ("v1d", "v1 deflate"),
            )
        )
        + f" (v2 zstd = {per_hour['v2z'] / per_hour['v1']:.2f}x v1)"
    )
    with console.status("blind host..."):
        console.print(blind_table(list_commits, window=2.0))
