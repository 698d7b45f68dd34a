"""what the scale benchmark reads from Redis: bytes by key family, and the server's
own counters of commands and reads (its round trips).

- `memory_by_family`: every key (SCAN), its family (`engine.keys.family_of`; the
  docket's keys under its name; anything else apart) and `MEMORY USAGE ... SAMPLES 0`
  (exact: every element of a set is counted), pipelined.
- `RedisCounters`: `INFO stats` and `INFO commandstats` at one moment. Redis counts
  commands, not round trips: a pipeline of 800 commands is 800 calls but one read
  event, so `total_reads_processed` (Redis >= 6) stands for the round trips.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

from engine.keys import family_of

SCAN_COUNT: Final = 1_000
USAGE_BATCH: Final = 1_000  # MEMORY USAGE commands per pipeline


@dataclass(frozen=True)
class FamilyBytes:
    keys: int
    bytes: int


def family_name(key: str, docket_name: str) -> str:
    """the family of `key` for the memory table: ours by `engine.keys`, docket's, other."""
    family = family_of(key)
    if family is not None:
        return family.name
    if key.startswith(f"{docket_name}:") or key == docket_name:
        return "docket"
    return "other"


async def memory_by_family(redis: Any, docket_name: str) -> dict[str, FamilyBytes]:
    """every key's exact memory, summed by family."""
    keys: list[str] = []
    async for raw in redis.scan_iter(count=SCAN_COUNT):
        keys.append(raw.decode() if isinstance(raw, bytes) else raw)
    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    for start in range(0, len(keys), USAGE_BATCH):
        batch = keys[start : start + USAGE_BATCH]
        async with redis.pipeline(transaction=False) as pipe:
            for key in batch:
                pipe.memory_usage(key, samples=0)
            usages = await pipe.execute()
        for key, usage in zip(batch, usages, strict=True):
            if usage is None:  # expired since the scan
                continue
            name = family_name(key, docket_name)
            counts[name] += 1
            sizes[name] += int(usage)
    return {name: FamilyBytes(counts[name], sizes[name]) for name in sorted(counts)}


@dataclass(frozen=True)
class RedisCounters:
    commands: int  # total_commands_processed
    reads: int  # total_reads_processed: read events, one per round trip (or part of one)
    by_command: Counter[str] = field(default_factory=Counter)
    used_memory: int = 0

    def minus(self, before: RedisCounters) -> RedisCounters:
        return RedisCounters(
            self.commands - before.commands,
            self.reads - before.reads,
            self.by_command - before.by_command,
            self.used_memory - before.used_memory,
        )


async def counters(redis: Any) -> RedisCounters:
    stats = await redis.info("stats")
    commandstats = await redis.info("commandstats")
    memory = await redis.info("memory")
    by_command = Counter(
        {
            name.removeprefix("cmdstat_"): int(figures["calls"])
            for name, figures in commandstats.items()
        }
    )
    return RedisCounters(
        int(stats["total_commands_processed"]),
        int(stats["total_reads_processed"]),
        by_command,
        int(memory["used_memory"]),
    )


async def used_memory(redis: Any) -> int:
    return int((await redis.info("memory"))["used_memory"])
