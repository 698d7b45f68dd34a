"""is each dependency answering? cheap probes, each run by one caller at a time and
its answer reused for a while, however often /health, /health/ready or /metrics ask.

a probe costs one small request: a Redis PING, a primary-key miss in plyr.fm's
database, one id looked up in turbopuffer. turbopuffer is billed and rate-limited
per request, so its answer is reused longest (HEALTH_STORE_CHECK_SECONDS); the
others for a second, as the API's `/health` always did (issue 16).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import redis.exceptions
from prometheus_client import CollectorRegistry, Gauge

from engine.ports import Catalog, CatalogError, VectorStore, VectorStoreError

REDIS_TIMEOUT_SECONDS: Final = 0.25
CATALOG_TIMEOUT_SECONDS: Final = 1.0
STORE_TIMEOUT_SECONDS: Final = 2.0
PROBE_PLAYLIST_ID: Final = "00000000-0000-0000-0000-000000000000"  # a primary-key miss
PROBE_TRACK_ID: Final = 0  # no track has id 0: an index lookup that finds nothing
REDIS_FAULTS: Final = (redis.exceptions.RedisError, OSError, TimeoutError)

Probe = Callable[[], Awaitable[bool]]


class CachedProbe:
    """one probe, single-flight, its last answer reused for `max_age_seconds`."""

    def __init__(
        self,
        probe: Probe,
        *,
        max_age_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._probe = probe
        self.max_age_seconds = max_age_seconds
        self._clock = clock
        self._last: tuple[bool, float] | None = None
        self._running: asyncio.Task[bool] | None = None
        self.runs = 0  # probes actually made (tests)

    async def alive(self) -> bool:
        last = self._last
        if last is not None and self._clock() - last[1] < self.max_age_seconds:
            return last[0]
        if self._running is None:
            self._running = asyncio.create_task(self._run())
        # shielded: a caller that goes away does not cancel the others' probe
        return await asyncio.shield(self._running)

    async def _run(self) -> bool:
        try:
            self.runs += 1
            answer = await self._probe()
            self._last = (answer, self._clock())
            return answer
        finally:
            self._running = None

    async def aclose(self) -> None:
        if self._running is not None:
            self._running.cancel()
            await asyncio.gather(self._running, return_exceptions=True)


@dataclass(frozen=True, slots=True)
class Readiness:
    """a process's dependencies by name; ready when every one answers."""

    probes: Mapping[str, CachedProbe]

    async def report(self) -> dict[str, str]:
        """each dependency's state: 'ok' or 'down'."""
        names = list(self.probes)
        answers = await asyncio.gather(*(self.probes[name].alive() for name in names))
        return {name: "ok" if up else "down" for name, up in zip(names, answers, strict=True)}

    async def aclose(self) -> None:
        for probe in self.probes.values():
            await probe.aclose()


def redis_probe(client: Any) -> Probe:
    """a PING on `client` within REDIS_TIMEOUT_SECONDS (a hung Redis is a down one)."""

    async def probe() -> bool:
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_SECONDS):
                return bool(await client.ping())
        except REDIS_FAULTS:
            return False

    return probe


def catalog_probe(catalog: Catalog) -> Probe:
    """a playlist that cannot exist, looked up by primary key."""

    async def probe() -> bool:
        try:
            async with asyncio.timeout(CATALOG_TIMEOUT_SECONDS):
                await catalog.get_playlist(PROBE_PLAYLIST_ID)
        except (CatalogError, TimeoutError):
            return False
        return True

    return probe


def store_probe(store: VectorStore) -> Probe:
    """one id no track has, looked up in the vector store: a dead or refusing
    turbopuffer (network, 5xx, a revoked key) answers False."""

    async def probe() -> bool:
        try:
            async with asyncio.timeout(STORE_TIMEOUT_SECONDS):
                await store.get_vectors([PROBE_TRACK_ID])
        except (VectorStoreError, TimeoutError):
            return False
        return True

    return probe


def never_configured() -> Probe:
    """the probe of a dependency that is not configured: never up."""

    async def probe() -> bool:
        return False

    return probe


class DependencyGauge:
    """`plyr_recs_dependency_up{dependency}`: each dependency's last probe, 1 or 0, set
    when the metrics are scraped (the probes' reuse keeps that cheap)."""

    def __init__(self, registry: CollectorRegistry, readiness: Readiness) -> None:
        self._readiness = readiness
        self.gauge = Gauge(
            "plyr_recs_dependency_up",
            "1 while the dependency answers its probe, 0 while it does not.",
            ["dependency"],
            registry=registry,
        )

    async def refresh(self) -> None:
        for name, state in (await self._readiness.report()).items():
            self.gauge.labels(name).set(1.0 if state == "ok" else 0.0)
