"""what `plyr-recs status` shows: the consumer's counters and how far its cursor lags.

read from Redis only (the cursor key and the stats hash the running consumer
publishes every `jetstream_stats_seconds`), so it works from any machine that
can reach the Redis, whether or not a consumer is running.

the lag is now minus the cursor's time: it measures how far behind the firehose
the consumer is while events flow. the stored cursor is held back to where
plyr.fm's commits are known complete (`jetstream.blind`), so on a quiet night
it lags by up to two blind-host windows by design; `rotations:blind_host` counts
the hosts left for silence. on a quiet stream (no playlist edits for a
while) it grows although nothing is pending, because Jetstream sends nothing to
move the cursor; `last_event_time_us` and the counters tell the two apart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from rich.table import Table

from jetstream.cursor import CursorStore
from jetstream.keys import JetstreamKeys
from jetstream.stats import PUBLISHED_EVERY, STOPPED_AT, StatsStore

# counters older than this many publication periods mean no consumer is publishing
STALE_AFTER_PERIODS = 3
# the period assumed for counters that do not say theirs (an older consumer)
DEFAULT_PERIOD_SECONDS = 30.0


@dataclass(frozen=True)
class ConsumerStatus:
    list_collection: str
    cursor_time_us: int | None
    cursor_lag_seconds: float | None
    stats: dict[str, str] = field(default_factory=dict)

    @property
    def warning(self) -> str | None:
        """what an operator must know first: the consumer stopped, or its counters are
        stale (so it is probably dead, or cannot reach this Redis); None when fresh."""
        age = self.stats_age_seconds
        if age is None:
            return None
        if STOPPED_AT in self.stats:
            return f"the consumer stopped {age:.0f} s ago (a clean shutdown); none is publishing"
        try:
            period = float(self.stats.get(PUBLISHED_EVERY, DEFAULT_PERIOD_SECONDS))
        except ValueError:
            period = DEFAULT_PERIOD_SECONDS
        if age <= STALE_AFTER_PERIODS * period:
            return None
        return (
            f"the counters are {age:.0f} s old but are published every {period:g} s: "
            "the consumer is probably not running, or cannot reach this Redis"
        )

    @property
    def stats_age_seconds(self) -> float | None:
        """how old the published counters are (a stale one means no consumer runs)."""
        updated = self.stats.get("updated_at")
        try:
            return None if updated is None else max(0.0, time.time() - float(updated))
        except ValueError:
            return None


async def read_status(
    redis: aioredis.Redis, list_collection: str, *, now: float | None = None
) -> ConsumerStatus:
    keys = JetstreamKeys(list_collection)
    cursor = await CursorStore(redis, keys).load()
    stats = await StatsStore(redis, keys).read()
    moment = time.time() if now is None else now
    lag = None if cursor is None else max(0.0, moment - cursor / 1_000_000)
    return ConsumerStatus(list_collection, cursor, lag, stats)


def render_status(status: ConsumerStatus) -> Table:
    """a two-column table: position first, then every counter by name."""
    table = Table(title=f"jetstream consumer · {status.list_collection}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    if status.cursor_time_us is None:
        table.add_row("cursor", "none stored (a first start follows the live tail)")
    else:
        table.add_row("cursor", str(status.cursor_time_us))
        table.add_row("cursor lag", f"{status.cursor_lag_seconds or 0.0:.1f} s")
    age = status.stats_age_seconds
    if age is None:
        table.add_row("counters", "none published (no consumer has run recently)")
        return table
    table.add_row("counters published", f"{age:.0f} s ago")
    if status.warning is not None:
        table.add_row("[bold red]warning[/]", f"[bold red]{status.warning}[/]")
    silence = _plyr_silence_seconds(status.stats)
    if silence is not None:
        table.add_row("plyr.fm silent for", f"{silence:.0f} s of stream")
    for name in sorted(status.stats):
        if name in ("updated_at", "started_at", "cursor_time_us", PUBLISHED_EVERY, STOPPED_AT):
            continue
        table.add_row(name, status.stats[name])
    return table


def _plyr_silence_seconds(stats: dict[str, str]) -> float | None:
    """how far the stream has moved past the last plyr.fm position (what the blind
    watch compares with JETSTREAM_BLIND_HOST_SECONDS)."""
    try:
        anchor = int(stats["plyr_anchor_time_us"])
        newest = int(stats["last_event_time_us"])
    except (KeyError, ValueError):
        return None
    return max(0, newest - anchor) / 1_000_000
