"""what each long-running process waits for at start, and serves on METRICS_PORT.

the assembly only: the probes, the server and the metric adapters are
`worker.ops`; the reconcile totals are the API's `ReconcileMetrics`, shared.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from docket import Docket
from prometheus_client import CollectorRegistry, generate_latest

from worker.api.reconcile_metrics import ReconcileMetrics
from worker.ops.consumer_metrics import ConsumerCollector, ConsumerView
from worker.ops.heap import heap_metrics
from worker.ops.probes import (
    CachedProbe,
    DependencyGauge,
    Readiness,
    catalog_probe,
    never_configured,
    redis_probe,
    store_probe,
)
from worker.ops.server import OpsServer
from worker.ops.worker_metrics import WorkerMetrics
from worker.processes.waiting import wait_for_database, wait_for_redis
from worker.recs.services import Services
from worker.settings import Settings
from worker.wiring import REDIS_SOCKET_TIMEOUT

Refresh = Callable[[], Awaitable[None]]


async def wait_for_dependencies(settings: Settings, *, database: bool) -> None:
    """wait (STARTUP_WAIT_SECONDS) for the Redis servers set, and for plyr.fm's
    database when this process reads it."""
    seconds = settings.startup_wait_seconds
    if settings.redis_url is not None:
        await wait_for_redis("REDIS_URL", settings.redis_url, seconds=seconds)
    if not settings.docket_url.startswith("memory://") and settings.docket_url != (
        settings.redis_url
    ):
        await wait_for_redis("DOCKET_URL", settings.docket_url, seconds=seconds)
    if database and settings.database_url is not None:
        await wait_for_database(settings.database_url.get_secret_value(), seconds=seconds)


@asynccontextmanager
async def worker_ops(
    settings: Settings, services: Services, docket: Docket
) -> AsyncIterator[WorkerMetrics]:
    """the worker's metrics (also its tasks' observer) and, with METRICS_PORT, its server."""
    registry = CollectorRegistry(auto_describe=True)
    metrics = WorkerMetrics(
        registry, counts=services.counts, snapshot=docket.snapshot, redis=services.redis
    )
    reconcile = ReconcileMetrics(registry, services.redis)
    heap_metrics(registry)
    async with AsyncExitStack() as stack:
        docket_redis = _docket_client(settings, stack)
        probes = {
            "redis": CachedProbe(redis_probe(services.redis)),
            "docket": CachedProbe(redis_probe(docket_redis or services.redis)),
            "catalog": CachedProbe(catalog_probe(services.catalog)),
            "turbopuffer": _store_probe(settings, services),
        }
        readiness = Readiness(probes)
        dependencies = DependencyGauge(registry, readiness)
        if settings.metrics_port:
            await stack.enter_async_context(
                OpsServer(
                    process="worker",
                    host=settings.metrics_host,
                    port=settings.metrics_port,
                    render=_renderer(
                        registry, metrics.refresh, reconcile.refresh, dependencies.refresh
                    ),
                    readiness=readiness,
                    extra=lambda: {"store": _store_name(services)},
                )
            )
        yield metrics


@asynccontextmanager
async def consumer_ops(
    settings: Settings, consumer: ConsumerView, redis: Any
) -> AsyncIterator[None]:
    """the consumer's /metrics and /health on METRICS_PORT (nothing when it is 0)."""
    if not settings.metrics_port:
        yield
        return
    registry = CollectorRegistry(auto_describe=True)
    registry.register(ConsumerCollector(consumer))
    async with AsyncExitStack() as stack:
        docket_redis = _docket_client(settings, stack)
        readiness = Readiness(
            {
                "redis": CachedProbe(redis_probe(redis)),
                "docket": CachedProbe(redis_probe(docket_redis or redis)),
            }
        )
        dependencies = DependencyGauge(registry, readiness)
        stats = consumer.stats
        await stack.enter_async_context(
            OpsServer(
                process="jetstream",
                host=settings.metrics_host,
                port=settings.metrics_port,
                render=_renderer(registry, dependencies.refresh),
                readiness=readiness,
                extra=lambda: {
                    "host": stats.connected_host,
                    "cursor_lag_seconds": consumer.cursor_lag_seconds(),
                },
            )
        )
        yield


def _renderer(registry: CollectorRegistry, *refreshes: Refresh) -> Callable[[], Awaitable[bytes]]:
    async def render() -> bytes:
        for refresh in refreshes:
            await refresh()
        return generate_latest(registry)

    return render


def _docket_client(settings: Settings, stack: AsyncExitStack) -> Any:
    """a client of docket's Redis for the probe, when it is not REDIS_URL's."""
    if settings.docket_url.startswith("memory://") or settings.docket_url == settings.redis_url:
        return None
    client = aioredis.Redis.from_url(
        settings.docket_url,
        socket_timeout=REDIS_SOCKET_TIMEOUT,
        socket_connect_timeout=REDIS_SOCKET_TIMEOUT,
    )
    stack.push_async_callback(client.aclose)
    return client


def _store_probe(settings: Settings, services: Services) -> CachedProbe:
    if services.store is None:
        return CachedProbe(never_configured(), max_age_seconds=float("inf"))
    return CachedProbe(
        store_probe(services.store), max_age_seconds=settings.health_store_check_seconds
    )


def _store_name(services: Services) -> str:
    if services.store is None:
        return "disabled (TURBOPUFFER_API_KEY is not set)"
    return type(services.store).__name__
