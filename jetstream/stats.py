"""the consumer's counters, kept in memory and published to Redis for `plyr-recs status`.

every frame lands in exactly one bucket: a playlist change (then enqueued or
skipped by the guard), a skip by reason, or a rejection by reason. the counters
describe the running process since it started; the Redis copy is a snapshot
rewritten every stats interval and read by the status command.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT

from jetstream.keys import STATS_TTL_SECONDS, JetstreamKeys


@dataclass
class ConsumerStats:
    """what the consumer has seen and done since it started."""

    started_at: float = field(default_factory=time.time)
    frames: int = 0
    changes: int = 0  # valid create/update/delete commits of the list collection
    recomputes: int = 0  # recompute tasks handed to docket
    forgets: int = 0  # forget tasks handed to docket
    flood_deferred: int = 0  # tasks started later than the settle delay: a DID past its pace
    track_deletes: int = 0  # fm.plyr.track deletes handed to the marker sink
    resyncs: int = 0  # v2 #sync events (repo resyncs) handed to the marker sink
    # the connection was abandoned on purpose, by reason: blind_host (no plyr.fm
    # commit for the blind-host window while other frames flowed), missed_versions
    # (reported by the reconcile loop)
    rotations: Counter[str] = field(default_factory=Counter)
    cursor_too_old: int = 0  # v2 hosts that refused the seq cursor (resumed from their floor)
    dictionary_unavailable: int = 0  # v2 hosts whose zstd dictionary could not be had
    connected_wire: str | None = None
    missed_version_reports: int = 0  # versions the reconcile loop found the stream missed
    # Redis came back with an older copy of its data (its last writes lost): the
    # consumer resumed from the cursor Redis still held (jetstream.state_watch)
    partial_losses: int = 0
    plyr_anchor_time_us: int | None = None  # plyr.fm's commits are known complete up to here
    future_frames: int = 0  # frames dated past the clock skew: handled, never the cursor
    skipped: Counter[str] = field(default_factory=Counter)
    invalid: Counter[str] = field(default_factory=Counter)
    reconnects: Counter[str] = field(default_factory=Counter)
    store_errors: int = 0  # Redis or docket unavailable (each one stops reading)
    connected_host: str | None = None
    last_event_time_us: int | None = None
    # gauges, not counts: what the flood control holds now (jetstream.flood), the
    # task arguments of every admitted task docket still keeps, and how many tasks
    task_bytes_held: int = 0
    tasks_held: int = 0

    def merge(self, other: ConsumerStats) -> None:
        """add a batch's counts once the batch is done (a failed batch is replayed,
        and its frames must not be counted twice)."""
        self.frames += other.frames
        self.changes += other.changes
        self.recomputes += other.recomputes
        self.forgets += other.forgets
        self.flood_deferred += other.flood_deferred
        self.track_deletes += other.track_deletes
        self.resyncs += other.resyncs
        self.future_frames += other.future_frames
        self.skipped.update(other.skipped)
        self.invalid.update(other.invalid)
        if other.last_event_time_us is not None and (
            self.last_event_time_us is None or other.last_event_time_us > self.last_event_time_us
        ):
            self.last_event_time_us = other.last_event_time_us

    def as_fields(self, *, cursor_time_us: int | None) -> dict[str, str]:
        """a flat string map for a Redis hash (`skipped:<reason>`, `invalid:<reason>`...)."""
        fields = {
            "started_at": f"{self.started_at:.3f}",
            "updated_at": f"{time.time():.3f}",
            "frames": str(self.frames),
            "changes": str(self.changes),
            "recomputes": str(self.recomputes),
            "forgets": str(self.forgets),
            "flood_deferred": str(self.flood_deferred),
            "future_frames": str(self.future_frames),
            "store_errors": str(self.store_errors),
            "track_deletes": str(self.track_deletes),
            "resyncs": str(self.resyncs),
            "cursor_too_old": str(self.cursor_too_old),
            "dictionary_unavailable": str(self.dictionary_unavailable),
            "task_bytes_held": str(self.task_bytes_held),
            "tasks_held": str(self.tasks_held),
        }
        if self.connected_host is not None:
            fields["host"] = self.connected_host
        if self.connected_wire is not None:
            fields["wire"] = self.connected_wire
        fields["missed_version_reports"] = str(self.missed_version_reports)
        fields["partial_losses"] = str(self.partial_losses)
        if self.plyr_anchor_time_us is not None:
            fields["plyr_anchor_time_us"] = str(self.plyr_anchor_time_us)
        if self.last_event_time_us is not None:
            fields["last_event_time_us"] = str(self.last_event_time_us)
        if cursor_time_us is not None:
            fields["cursor_time_us"] = str(cursor_time_us)
        for prefix, counter in (
            ("skipped", self.skipped),
            ("invalid", self.invalid),
            ("reconnects", self.reconnects),
            ("rotations", self.rotations),
        ):
            for reason, count in counter.items():
                fields[f"{prefix}:{reason}"] = str(count)
        return fields

    def summary(self, *, cursor_lag_seconds: float | None) -> str:
        """one log line."""
        lag = "n/a" if cursor_lag_seconds is None else f"{cursor_lag_seconds:.1f}s"
        return (
            f"frames={self.frames} changes={self.changes} recomputes={self.recomputes} "
            f"forgets={self.forgets} flood_deferred={self.flood_deferred} "
            f"skipped={sum(self.skipped.values())} "
            f"invalid={sum(self.invalid.values())} reconnects={sum(self.reconnects.values())} "
            f"store_errors={self.store_errors} track_deletes={self.track_deletes} "
            f"resyncs={self.resyncs} rotations={sum(self.rotations.values())} "
            f"cursor_too_old={self.cursor_too_old} cursor_lag={lag}"
        )


# fields of the stats hash beside the counters (`StatsStore.publish`)
PUBLISHED_EVERY = "published_every_seconds"
STOPPED_AT = "stopped_at"


class StatsStore:
    """the stats hash in Redis: replaced as a whole, so stale reasons never linger."""

    def __init__(self, redis: aioredis.Redis, keys: JetstreamKeys) -> None:
        self._redis = redis
        self._key = keys.stats

    async def publish(
        self,
        stats: ConsumerStats,
        *,
        cursor_time_us: int | None,
        every_seconds: float | None = None,
        stopped: bool = False,
    ) -> None:
        """replace the hash; `every_seconds` is how often the consumer publishes (so
        a reader can tell counters that are merely old from a consumer that is gone),
        `stopped` marks the last publication of a consumer that stopped cleanly."""
        async with self._redis.pipeline(transaction=True) as pipeline:
            pipeline.delete(self._key)
            fields: dict[FieldT, EncodableT] = {}
            fields.update(stats.as_fields(cursor_time_us=cursor_time_us))
            if every_seconds is not None:
                fields[PUBLISHED_EVERY] = f"{every_seconds:g}"
            if stopped:
                fields[STOPPED_AT] = fields["updated_at"]
            pipeline.hset(self._key, mapping=fields)
            pipeline.expire(self._key, STATS_TTL_SECONDS)
            await pipeline.execute()

    async def read(self) -> dict[str, str]:
        raw = await self._redis.hgetall(self._key)
        return {_text(key): _text(value) for key, value in raw.items()}


def _text(value: bytes | str) -> str:
    # the client may or may not have been built with decode_responses.
    return value.decode() if isinstance(value, bytes) else value
