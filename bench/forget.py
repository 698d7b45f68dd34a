"""what forgetting a deleted playlist costs on a full cache.

    uv run python -m bench.forget [--playlists 20000] [--versions 5] [--deletes 200]

a redis-server is filled as a day of the service would leave it: `--playlists`
playlists, each with `--versions` cached versions and its state, all written
through `RecommendationCache.put`. then `--deletes` playlists are forgotten two
ways, alternating so both see the same server:

- scan: the first implementation, kept here as the baseline: SCAN the keyspace
  for the playlist's pattern, delete what matches;
- set: `RecommendationCache.forget`, which reads the playlist's version set.

printed: each way's median and p99 per delete and Redis commands per delete,
the ratio of the medians, and a check that both left nothing of the playlists
they forgot and everything of the others.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from bench.loopback.servers import RedisServer
from engine.cache import CachedRecommendations, PlaylistState, cache_key_pattern, state_key
from engine.types import Track
from worker.store.cache import RecommendationCache

SCAN_BATCH = 200  # what the scan-based forget used


async def scan_forget(redis: Any, playlist_id: str) -> int:
    """the baseline: every key of the keyspace is visited to find one playlist's."""
    deleted = 0
    batch: list[bytes] = []
    async for key in redis.scan_iter(match=cache_key_pattern(playlist_id), count=SCAN_BATCH):
        batch.append(key)
        if len(batch) >= SCAN_BATCH:
            deleted += int(await redis.delete(*batch))
            batch.clear()
    deleted += int(await redis.delete(*batch, state_key(playlist_id)))
    return deleted


def playlist_id(index: int) -> str:
    return f"{index:08d}-0000-4000-8000-000000000000"


async def fill(cache: RecommendationCache, playlists: int, versions: int) -> None:
    tracks = [Track(i, f"track {i}", "someone.bsky.social", "Someone", None) for i in range(10)]
    value = CachedRecommendations(tracks, True, "rrf", "f" * 32, "2026-11-21T00:00:00+00:00")
    started = time.perf_counter()
    for index in range(playlists):
        pid = playlist_id(index)
        for version in range(versions):
            token = f"bafyrei{index:08d}v{version}"
            state = PlaylistState(token, "f" * 32, [1, 2, 3], [], f"3m{version}")
            await cache.put(pid, token, value, state)
        if (index + 1) % 5000 == 0:
            print(f"  filled {index + 1:,}/{playlists:,} playlists", flush=True)
    print(f"  filled in {time.perf_counter() - started:.0f} s", flush=True)


async def timed(
    forget: Callable[[str], Awaitable[int]], pid: str, redis: Any
) -> tuple[float, int, int]:
    before = int((await redis.info("stats"))["total_commands_processed"])
    started = time.perf_counter()
    deleted = await forget(pid)
    elapsed = time.perf_counter() - started
    after = int((await redis.info("stats"))["total_commands_processed"])
    return elapsed, deleted, after - before - 1  # the first INFO counts itself


def p99(values: list[float]) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * 0.99))]


async def main(playlists: int, versions: int, deletes: int) -> int:
    with tempfile.TemporaryDirectory(prefix="plyr-forget-") as directory:
        server = RedisServer(Path(directory))
        server.start()
        redis = aioredis.Redis.from_url(server.url)
        try:
            cache = RecommendationCache(redis)
            print(f"filling: {playlists:,} playlists x {versions} versions", flush=True)
            await fill(cache, playlists, versions)
            keys = int(await redis.dbsize())
            print(f"keyspace: {keys:,} keys", flush=True)
            ways: dict[str, Callable[[str], Awaitable[int]]] = {
                "scan": lambda pid: scan_forget(redis, pid),
                "set": cache.forget,
            }
            seconds: dict[str, list[float]] = {name: [] for name in ways}
            commands: dict[str, list[int]] = {name: [] for name in ways}
            for n in range(deletes):
                name = "scan" if n % 2 == 0 else "set"
                elapsed, deleted, sent = await timed(ways[name], playlist_id(n), redis)
                seconds[name].append(elapsed)
                commands[name].append(sent)
                if deleted < versions + 1:
                    print(f"  {name} deleted only {deleted} keys of playlist {n}")
                    return 1
            left = int(await redis.dbsize())
            # set: versions + state + the version set; scan: versions + state (the
            # baseline knew no version sets, so it leaves each one behind)
            per_set = versions + 2
            expected = keys - (deletes // 2) * per_set - ((deletes + 1) // 2) * (versions + 1)
            print()
            print("| way  | deletes | median     | p99        | Redis commands per delete |")
            print("|------|--------:|-----------:|-----------:|--------------------------:|")
            for name in ways:
                values = seconds[name]
                median_ms, p99_ms = statistics.median(values) * 1e3, p99(values) * 1e3
                per_delete = statistics.median(commands[name])
                print(
                    f"| {name:<4} | {len(values):>7} | {median_ms:>7.2f} ms"
                    f" | {p99_ms:>7.2f} ms | {per_delete:>25.0f} |"
                )
            ratio = statistics.median(seconds["scan"]) / statistics.median(seconds["set"])
            print(f"\nmedian scan / median set: {ratio:.0f}x on {keys:,} keys")
            print(f"keys left {left:,}, expected {expected:,}")
            return 0 if left == expected else 1
        finally:
            await redis.aclose()
            server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.forget", description=__doc__)
    parser.add_argument("--playlists", type=int, default=20_000)
    parser.add_argument("--versions", type=int, default=5)
    parser.add_argument("--deletes", type=int, default=200)
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.playlists, args.versions, args.deletes)))
