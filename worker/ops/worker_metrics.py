"""the worker's Prometheus metrics, read from what the worker already keeps.

- its outcome counters (`Services.counts`, a `collections.Counter` the tasks fill):
  read by their string names at scrape time, never copied, so a task that counts
  a new kind shows up without a change here;
- how long recomputes take: the engine run's wall time of every recompute
  (turbopuffer, plyr.fm's database and the maths; not the time in the queue),
  seen as the tasks' observer;
- the queue, from docket's snapshot (how many tasks are due, scheduled, running,
  and how long the oldest due one has waited): a silent worker fleet shows as a
  growing age, whatever the counters say;
- the withdrawal check round's age and size, from its record in Redis.

the reconcile loop's totals are `worker.api.reconcile_metrics`, added to the same
registry by the process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Final

from docket.docket import DocketSnapshot
from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from worker.ops.probes import REDIS_FAULTS
from worker.recs.recommender import Ensured
from worker.store.withdrawn import WithdrawalIndex

logger = logging.getLogger(__name__)

# a recompute's engine run: tens of ms on the embedded store, a few hundred with
# turbopuffer's round trips, seconds when it retries
RECOMPUTE_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# counters that are not totals: a streak goes back to 0, so it is a gauge
GAUGE_COUNTS: Final = frozenset({"withdrawal_round:failed_streak"})
READ_TIMEOUT_SECONDS: Final = 2.0
MIN_READ_INTERVAL_SECONDS: Final = 5.0  # a snapshot reads the queue: not on every scrape


class WorkerMetrics:
    """the metrics above, in `registry`; also the tasks' observer (`recomputed` etc.)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        counts: Counter[str],
        snapshot: Callable[[], Awaitable[DocketSnapshot]],
        redis: Any,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._snapshot = snapshot
        self._withdrawals = WithdrawalIndex(redis)
        self._clock = clock
        self._read_at = -float("inf")
        registry.register(_CountsCollector(counts))
        self.recompute_seconds = Histogram(
            "plyr_recs_worker_recompute_seconds",
            "wall time of a recompute's engine run (turbopuffer, plyr.fm's database, the "
            "maths), by outcome; the queue's wait is not in it.",
            ["outcome"],
            buckets=RECOMPUTE_BUCKETS,
            registry=registry,
        )
        self.queue = Gauge(
            "plyr_recs_worker_queue_tasks",
            "docket tasks by state: due (waiting for a worker), scheduled (later), running.",
            ["state"],
            registry=registry,
        )
        self.oldest_due = Gauge(
            "plyr_recs_worker_queue_oldest_due_age_seconds",
            "how long the oldest due task has waited for a worker (0 when none waits).",
            registry=registry,
        )
        self.workers = Gauge(
            "plyr_recs_worker_docket_workers",
            "docket workers seen alive on this queue (every process, not only this one).",
            registry=registry,
        )
        self.round_started = Gauge(
            "plyr_recs_worker_withdrawal_round_last_timestamp_seconds",
            "when the last completed withdrawal check round began (unix time; 0 if none "
            "is recorded). its age is how stale the withdrawn set may be.",
            registry=registry,
        )
        self.round_withdrawn = Gauge(
            "plyr_recs_worker_withdrawn_tracks",
            "tracks in the withdrawn set after the last check round.",
            registry=registry,
        )

    # --- the tasks' observer (worker.recs.services.TaskObserver) -------------------

    def recomputed(self, playlist_uri: str, cid: str, refreshed: Ensured) -> None:
        if refreshed.seconds > 0:  # 0: the engine did not run (reused, already cached)
            self.recompute_seconds.labels(refreshed.outcome.value).observe(refreshed.seconds)

    def forgot(self, playlist_uri: str) -> None:
        """counted by the task itself (forget:*)."""

    def dropped(self, playlist_uri: str, reason: str) -> None:
        """counted by the task itself (dropped:*)."""

    # --- read at scrape time -----------------------------------------------------------

    async def refresh(self) -> None:
        """read the queue and the round now, unless read lately; a fault keeps the last
        values (the scrape still answers; /health/ready says what is down)."""
        now = time.monotonic()
        if now - self._read_at < MIN_READ_INTERVAL_SECONDS:
            return
        self._read_at = now
        try:
            async with asyncio.timeout(READ_TIMEOUT_SECONDS):
                snapshot = await self._snapshot()
                last_round = await self._withdrawals.last_round()
        except (*REDIS_FAULTS, TimeoutError) as error:
            logger.info("worker metrics: the queue could not be read: %r", error)
            return
        self._queue(snapshot)
        self.round_started.set(0.0 if last_round is None else last_round.started_at)
        self.round_withdrawn.set(0 if last_round is None else last_round.withdrawn)

    def _queue(self, snapshot: DocketSnapshot) -> None:
        taken = snapshot.taken if snapshot.taken.tzinfo else snapshot.taken.replace(tzinfo=UTC)
        due = [e.when for e in snapshot.future if _aware(e.when) <= taken]
        self.queue.labels("due").set(len(due))
        self.queue.labels("scheduled").set(len(snapshot.future) - len(due))
        self.queue.labels("running").set(len(snapshot.running))
        oldest = min((_aware(when) for when in due), default=None)
        self.oldest_due.set(0.0 if oldest is None else (taken - oldest).total_seconds())
        self.workers.set(len(snapshot.workers))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class _CountsCollector:
    """`Services.counts` as `plyr_recs_worker_outcomes_total{kind=...}`, and the few
    kinds that are not totals as gauges."""

    def __init__(self, counts: Counter[str]) -> None:
        self._counts = counts

    def collect(self) -> Iterable[Metric]:
        totals = CounterMetricFamily(
            "plyr_recs_worker_outcomes",
            "what the worker's tasks did, by kind: recompute:<outcome>, dropped:<reason>, "
            "retried:<reason>, failed:unexpected, forget:*, withdrawn:*, refill:*, "
            "withdrawal_round:done|failed, reconcile:passes|failed_pass|missed_by_firehose.",
            labels=["kind"],
        )
        streaks = GaugeMetricFamily(
            "plyr_recs_worker_streak",
            "consecutive failures of a loop, by kind (withdrawal_round:failed_streak).",
            labels=["kind"],
        )
        for kind, count in sorted(self._counts.items()):
            (streaks if kind in GAUGE_COUNTS else totals).add_metric([kind], count)
        yield totals
        yield streaks
