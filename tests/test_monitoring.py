"""the alert rules and the dashboard (scripts/monitoring) name only metrics that some
process serves: built here exactly as the worker, the consumer and the API build them."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import fakeredis
from prometheus_client import CollectorRegistry, generate_latest

from jetstream.blind import BlindHostWatch
from jetstream.stats import ConsumerStats
from worker.api.metrics import ApiMetrics
from worker.api.reconcile_metrics import ReconcileMetrics
from worker.ops.consumer_metrics import ConsumerCollector
from worker.ops.probes import CachedProbe, DependencyGauge, Readiness
from worker.ops.worker_metrics import WorkerMetrics

MONITORING = Path(__file__).resolve().parents[1] / "scripts" / "monitoring"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


class Consumer:
    stats = ConsumerStats()
    blind = BlindHostWatch(900.0)

    def cursor_lag_seconds(self) -> float | None:
        return None


async def never_called() -> bool:
    raise AssertionError("no probe at build time")


def served_names() -> set[str]:
    registries = []
    worker = CollectorRegistry()
    redis = fakeredis.FakeAsyncRedis()
    WorkerMetrics(worker, counts=Counter(), snapshot=never_called, redis=redis)  # type: ignore[arg-type]
    ReconcileMetrics(worker, redis)
    DependencyGauge(worker, Readiness({"redis": CachedProbe(never_called)}))
    registries.append(worker)
    consumer = CollectorRegistry()
    consumer.register(ConsumerCollector(Consumer()))
    registries.append(consumer)
    registries.append(ApiMetrics(auth_counts=Counter(), cache_counts=Counter()).registry)
    names = set()
    for registry in registries:
        generate_latest(registry)  # the exposition works
        # every family, with or without samples yet (a labelled counter has none
        # until its first increment, and the text leaves it out until then)
        for family in registry.collect():
            names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    return names


def named(text: str) -> set[str]:
    return set(re.findall(r"\bplyr_recs_[a-z0-9_]+", text))


def test_every_metric_the_alerts_and_the_dashboard_name_is_served() -> None:
    served = served_names()
    alerts = named((MONITORING / "alerts.yml").read_text())
    dashboard_text = (MONITORING / "dashboard.json").read_text()
    json.loads(dashboard_text)  # a dashboard Grafana can import
    dashboard = named(dashboard_text)
    assert len(alerts) >= 10
    assert len(dashboard) >= 15
    assert alerts - served == set()
    assert dashboard - served == set()


def test_the_alerts_cover_the_incidents() -> None:
    text = (MONITORING / "alerts.yml").read_text()
    for signal in (
        'rotations_total{reason="blind_host"}',  # a blind host
        "queue_oldest_due_age_seconds",  # a silent worker
        "missed_by_firehose",
        "cursor_lag_seconds",
        "withdrawal_round_last_timestamp_seconds",
    ):
        assert signal in text, signal
