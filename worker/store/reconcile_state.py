"""the reconcile loop's own keys: where a pass is, what the last one did, the counters.

    plyr:reconcile:{run}:position   the pass under way: last playlist id done, start
                                    time and counts so far (a resumed pass carries
                                    on from there); lives a few intervals
    plyr:reconcile:{run}:last       the last finished pass (for `plyr-recs status`)
    plyr:reconcile:stats            totals across passes (missed_by_firehose, passes)

`run` is `loop` for the workers' perpetual pass and `warm` for `plyr-recs warm`,
so a foreground pass never moves the loop's position. every key has a TTL.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from engine.keys import RECONCILE_PREFIX

SUMMARY_TTL_SECONDS: Final = 7 * 86_400  # a week after the last pass nobody reads it
STATS_KEY: Final = f"{RECONCILE_PREFIX}:stats"
MAX_COUNT_KINDS: Final = 64  # kinds of count kept from a stored summary (it is ours, but bounded)


@dataclass
class PassSummary:
    """what one pass did; `counts` by kind (warm, enqueued:cold, deleted, failed:...)."""

    run: str
    started_at: float  # unix time
    finished_at: float | None = None
    listed: int = 0  # playlists read from plyr.fm's database
    total_estimate: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    after: str | None = None  # the last playlist id handled
    resumed: bool = False

    @property
    def seconds(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started_at

    @property
    def enqueued(self) -> int:
        return sum(n for kind, n in self.counts.items() if kind.startswith("enqueued:"))

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "run": self.run,
                "started_at": self.started_at,
                "finished_at": self.finished_at,
                "listed": self.listed,
                "total_estimate": self.total_estimate,
                "counts": dict(self.counts),
                "after": self.after,
                "resumed": self.resumed,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> PassSummary | None:
        """None for anything not written by `to_json` (then the pass starts afresh)."""
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(data, dict):
            return None
        started = data.get("started_at")
        finished = data.get("finished_at")
        counts = data.get("counts")
        after = data.get("after")
        if (
            not isinstance(started, int | float)
            or not (finished is None or isinstance(finished, int | float))
            or not isinstance(counts, dict)
            or not (after is None or isinstance(after, str))
        ):
            return None
        kept = Counter(
            {
                str(kind): int(n)
                for kind, n in list(counts.items())[:MAX_COUNT_KINDS]
                if isinstance(n, int) and not isinstance(n, bool)
            }
        )
        return cls(
            run=str(data.get("run", "")),
            started_at=float(started),
            finished_at=None if finished is None else float(finished),
            listed=_int(data.get("listed")),
            total_estimate=_int(data.get("total_estimate")),
            counts=kept,
            after=after,
            resumed=bool(data.get("resumed", False)),
        )


class ReconcileState:
    """Redis I/O for the keys above."""

    def __init__(self, redis: Any, *, run: str, position_ttl_seconds: int) -> None:
        if not run.isidentifier():
            raise ValueError("a run name is a plain word")
        self.redis = redis
        self.run = run
        self.position_ttl_seconds = max(1, position_ttl_seconds)

    @property
    def position_key(self) -> str:
        return f"{RECONCILE_PREFIX}:{self.run}:position"

    @property
    def last_key(self) -> str:
        return f"{RECONCILE_PREFIX}:{self.run}:last"

    async def resume(self) -> PassSummary | None:
        raw = await self.redis.get(self.position_key)
        return None if raw is None else PassSummary.from_json(raw)

    async def save_position(self, summary: PassSummary) -> None:
        await self.redis.set(self.position_key, summary.to_json(), ex=self.position_ttl_seconds)

    async def finish(self, summary: PassSummary) -> None:
        """store the finished pass as the last one, drop the position, count the pass."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.last_key, summary.to_json(), ex=SUMMARY_TTL_SECONDS)
            pipe.delete(self.position_key)
            pipe.hincrby(STATS_KEY, "passes", 1)
            pipe.expire(STATS_KEY, SUMMARY_TTL_SECONDS)
            await pipe.execute()

    async def count_missed(self, versions: int) -> None:
        """add healed versions to the total as a page finds them (a resumed pass does
        not count its earlier pages again: they were counted when found)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(STATS_KEY, "missed_by_firehose", versions)
            pipe.expire(STATS_KEY, SUMMARY_TTL_SECONDS)
            await pipe.execute()

    async def last(self) -> PassSummary | None:
        raw = await self.redis.get(self.last_key)
        return None if raw is None else PassSummary.from_json(raw)


async def reconcile_totals(redis: Any) -> dict[str, int]:
    """the counters across passes (`missed_by_firehose`, `passes`): metrics and status."""
    raw = await redis.hgetall(STATS_KEY)
    totals: dict[str, int] = {"passes": 0, "missed_by_firehose": 0}
    for kind, value in raw.items():
        name = kind.decode() if isinstance(kind, bytes) else str(kind)
        if name in totals:
            try:
                totals[name] = int(value)
            except ValueError:
                continue
    return totals


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
