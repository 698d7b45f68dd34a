"""the API's Prometheus metrics, one registry per app (tests build many apps).

what an operator asks of this API: how many requests and with which status;
how often the cache answered; how long inline computes take; which
degradations happened (and so why someone saw "no recommendations"); why
credentials were refused. the counts kept elsewhere (`Authenticator.counts`,
`RecommendationCache.counts`) are read at scrape time, not copied.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Mapping
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
# inline computes: the engine (tens of ms) plus, at worst, a PDS read and store retries.
COMPUTE_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ApiMetrics:
    """the counters and histograms of one app, and their text exposition."""

    def __init__(self, *, auth_counts: Tally[str], cache_counts: Tally[str]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "plyr_recs_api_requests",
            "HTTP requests answered, by route template and status code.",
            ["route", "status"],
            registry=self.registry,
        )
        self.cache = Counter(
            "plyr_recs_api_cache",
            "recommendation lookups by cache result: hit, miss, or bypass (Redis down).",
            ["result"],
            registry=self.registry,
        )
        self.answers = Counter(
            "plyr_recs_api_answers",
            "recommendation answers by where they came from (hit, computed, reused, "
            "already_cached, unavailable) or the degradation that produced them.",
            ["source"],
            registry=self.registry,
        )
        self.track_sources = Counter(
            "plyr_recs_api_track_sources",
            "where an inline compute read the playlist's tracks: state, pds, items.",
            ["source"],
            registry=self.registry,
        )
        self.more_tracks = Counter(
            "plyr_recs_api_more_tracks",
            'answers that reached past the tracks an entry keeps whole ("more" past the '
            "first page, or a withdrawal's gap): hydrated from plyr.fm's database, or "
            "failed (served the whole tracks alone).",
            ["result"],
            registry=self.registry,
        )
        self.redis_faults = Counter(
            "plyr_recs_api_redis_faults",
            "Redis errors or timeouts met by the API (each pauses the cache for a moment).",
            registry=self.registry,
        )
        self.catalog_faults = Counter(
            "plyr_recs_api_catalog_faults",
            "plyr.fm database errors met by the API (answered from the cache instead).",
            registry=self.registry,
        )
        self.compute_seconds = Histogram(
            "plyr_recs_api_compute_seconds",
            "wall time of an inline compute on a miss (track list, engine, cache write).",
            buckets=COMPUTE_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(
            _TallyCollector(
                {
                    "plyr_recs_api_auth": (
                        "credential checks: accepted:<way> or rejected:<reason>.",
                        auth_counts,
                    ),
                    "plyr_recs_api_cache_faults": (
                        "unreadable cache entries and states (treated as misses).",
                        cache_counts,
                    ),
                }
            )
        )
        self.dependency_up = Gauge(
            "plyr_recs_dependency_up",
            "1 while the dependency answers its probe (redis, catalog, turbopuffer), else 0.",
            ["dependency"],
            registry=self.registry,
        )
        self.hit = self.cache.labels("hit")  # the hot path: resolve the child once
        self.hit_answer = self.answers.labels("hit")

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _TallyCollector:
    """exposes `collections.Counter`s kept by other parts as labelled counters."""

    def __init__(self, tallies: Mapping[str, tuple[str, Tally[str]]]) -> None:
        self._tallies = tallies

    def collect(self) -> Iterable[Metric]:
        for name, (documentation, tally) in self._tallies.items():
            family = CounterMetricFamily(name, documentation, labels=["kind"])
            for kind, count in sorted(tally.items()):
                family.add_metric([kind], count)
            yield family


class RequestMetricsMiddleware:
    """counts every HTTP response by route template (bounded) and status code.

    pure ASGI rather than a BaseHTTPMiddleware: it adds no task and no copy of
    the body to the hot path.
    """

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the server error middleware outside this one will answer

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            # the template, never the raw path: a scan of random URLs must not grow labels.
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(route, str(status)).inc()
