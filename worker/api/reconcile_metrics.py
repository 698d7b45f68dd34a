"""the reconcile loop's counters on the API's `/metrics`, read from Redis at scrape time.

the workers run the loop and keep its totals in Redis (`worker.store.reconcile_state`);
the API is what Prometheus scrapes, so it exposes them: `missed_by_firehose` is the
signal that the firehose path is failing (a blind host, an outage longer than
Jetstream keeps), and the last pass's age says whether the loop runs at all.
one bounded Redis read per scrape, at most every `min_interval_seconds`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Final

from prometheus_client import CollectorRegistry, Gauge

from jetstream.faults import REDIS_UNAVAILABLE
from worker.store.reconcile_state import ReconcileState, reconcile_totals

READ_TIMEOUT_SECONDS: Final = 0.5


class ReconcileMetrics:
    def __init__(
        self, registry: CollectorRegistry, redis: Any, *, min_interval_seconds: float = 5.0
    ) -> None:
        self.redis = redis
        self.min_interval_seconds = min_interval_seconds
        self._read_at = -float("inf")
        self.missed = Gauge(
            "plyr_recs_reconcile_missed_by_firehose",
            "playlist versions the reconcile loop found in plyr.fm's database that the "
            "firehose never delivered, healed (total over the last week of passes).",
            registry=registry,
        )
        self.passes = Gauge(
            "plyr_recs_reconcile_passes",
            "reconcile passes finished (over the last week).",
            registry=registry,
        )
        self.last_pass = Gauge(
            "plyr_recs_reconcile_last_pass_timestamp_seconds",
            "when the last reconcile pass finished (unix time; 0 if none is recorded).",
            registry=registry,
        )
        self.last_enqueued = Gauge(
            "plyr_recs_reconcile_last_pass_enqueued",
            "recomputes the last reconcile pass enqueued.",
            registry=registry,
        )

    async def refresh(self) -> None:
        """read the totals now unless they were read lately; a Redis fault keeps the
        values of the last read (the scrape still answers)."""
        now = time.monotonic()
        if now - self._read_at < self.min_interval_seconds:
            return
        self._read_at = now
        try:
            async with asyncio.timeout(READ_TIMEOUT_SECONDS):
                totals = await reconcile_totals(self.redis)
                last = await ReconcileState(self.redis, run="loop", position_ttl_seconds=1).last()
        except (*REDIS_UNAVAILABLE, TimeoutError):
            return
        self.missed.set(totals["missed_by_firehose"])
        self.passes.set(totals["passes"])
        if last is not None:
            self.last_pass.set(last.finished_at or 0.0)
            self.last_enqueued.set(last.enqueued)
