"""the Jetstream consumer's Prometheus metrics, read from its own counters at scrape time.

`jetstream.stats.ConsumerStats` already counts everything (frames, changes, tasks,
skips and rejections by reason, reconnects and rotations by reason, flood
deferrals, the task bytes the flood control holds); this exposes it, plus what an
operator pages on: how far the cursor is behind now (a stalled consumer), how long
plyr.fm's commits have been silent on this connection while other frames flowed (a
blind host, plyr.fm's incident of 2026-07-30), and whether a host is connected at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from jetstream.blind import BlindHostWatch
from jetstream.stats import ConsumerStats

PREFIX = "plyr_recs_jetstream"

# ConsumerStats' plain totals, by attribute: (metric name, help)
TOTALS: dict[str, tuple[str, str]] = {
    "frames": ("frames", "Jetstream frames read."),
    "changes": ("changes", "valid create/update/delete commits of the list collection."),
    "recomputes": ("recomputes_enqueued", "recompute tasks handed to docket."),
    "forgets": ("forgets_enqueued", "forget tasks handed to docket."),
    "flood_deferred": (
        "flood_deferred",
        "tasks started later than the settle delay: a DID past its pace (never dropped).",
    ),
    "track_deletes": ("track_deletes", "fm.plyr.track deletes handed to the withdrawals."),
    "resyncs": ("resyncs", "v2 #sync events (repo resyncs) handed on."),
    "cursor_too_old": ("cursor_too_old", "v2 hosts that refused the cursor as too old."),
    "dictionary_unavailable": (
        "dictionary_unavailable",
        "v2 hosts whose zstd dictionary could not be had.",
    ),
    "missed_version_reports": (
        "missed_version_reports",
        "versions the reconcile loop reported the stream never delivered.",
    ),
    "future_frames": ("future_frames", "frames dated past the clock skew (never the cursor)."),
    "store_errors": (
        "redis_faults",
        "Redis or docket unavailable while consuming (each one stops reading until it "
        "answers again).",
    ),
}
# ConsumerStats' counters by reason: (metric name, help)
BY_REASON: dict[str, tuple[str, str]] = {
    "skipped": ("skipped", "frames skipped, by reason (other collections, replays, ...)."),
    "invalid": ("invalid", "frames or records rejected, by reason."),
    "reconnects": ("reconnects", "connections that ended, by reason."),
    "rotations": (
        "rotations",
        "connections abandoned on purpose for another host: blind_host, missed_versions.",
    ),
}


class ConsumerView(Protocol):
    """what is read of `jetstream.consumer.JetstreamConsumer`."""

    stats: ConsumerStats
    blind: BlindHostWatch

    def cursor_lag_seconds(self) -> float | None: ...


class ConsumerCollector:
    """a prometheus_client collector over one consumer."""

    def __init__(self, consumer: ConsumerView) -> None:
        self._consumer = consumer

    def collect(self) -> Iterable[Metric]:
        stats = self._consumer.stats
        for attribute, (name, documentation) in TOTALS.items():
            family = CounterMetricFamily(f"{PREFIX}_{name}", documentation)
            family.add_metric([], getattr(stats, attribute))
            yield family
        for attribute, (name, documentation) in BY_REASON.items():
            family = CounterMetricFamily(f"{PREFIX}_{name}", documentation, labels=["reason"])
            for reason, count in sorted(getattr(stats, attribute).items()):
                family.add_metric([reason], count)
            yield family
        lag = self._consumer.cursor_lag_seconds()
        yield _gauge(
            "cursor_lag_seconds",
            "how far the cursor (the newest fully handled frame) is behind now; -1 before "
            "the first frame.",
            -1.0 if lag is None else lag,
        )
        watch = self._consumer.blind
        yield _gauge(
            "plyr_silence_seconds",
            "stream time this connection has moved past the last plyr.fm commit while other "
            "frames flowed; past the blind-host window the host is rotated away.",
            watch.silent_seconds(),
        )
        yield _gauge(
            "blind_host_window_seconds",
            "JETSTREAM_BLIND_HOST_SECONDS: the silence that makes a host blind (0: no watch).",
            watch.window_seconds,
        )
        yield _gauge(
            "connected",
            "1 while connected to a Jetstream host, else 0.",
            0.0 if stats.connected_host is None else 1.0,
        )
        hosts = GaugeMetricFamily(
            f"{PREFIX}_host",
            "the host connected to now (value 1), by host and wire.",
            labels=["host", "wire"],
        )
        if stats.connected_host is not None:
            hosts.add_metric([stats.connected_host, stats.connected_wire or ""], 1.0)
        yield hosts
        yield _gauge(
            "task_bytes_held",
            "bytes of task arguments the admitted tasks docket still keeps hold in Redis, as "
            "the flood control counts them (at most JETSTREAM_MAX_PENDING_BYTES).",
            stats.task_bytes_held,
        )
        yield _gauge(
            "tasks_held",
            "admitted tasks docket still keeps (pending, running, retrying, or a run record).",
            stats.tasks_held,
        )
        yield _gauge(
            "started_timestamp_seconds", "when this consumer started (unix time).", stats.started_at
        )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(f"{PREFIX}_{name}", documentation)
    family.add_metric([], value)
    return family
