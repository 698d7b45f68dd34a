"""the process's wiring: which cache, catalog and vector store the tasks and API use.

built once per process from `Settings` (or handed in by `plyr-recs run` and the
tests), installed, and reached by the docket tasks through a dependency. the
real adapters are opened here and closed when the process stops.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis.asyncio as aioredis

from engine.ports import Catalog, VectorStore
from jetstream.config import ConsumerConfig
from jetstream.flood import FloodLimits
from jetstream.frames import FrameLimits
from jetstream.records import RecordLimits
from worker.settings import Settings
from worker.store.cache import RecommendationCache
from worker.tasks.recompute import Recommender, Refreshed

logger = logging.getLogger(__name__)

REDIS_SOCKET_TIMEOUT = 5.0  # seconds; a hung Redis must not hang a task or a request


class ConfigurationError(RuntimeError):
    """a process cannot start with these settings (the message says what to set)."""


class TaskObserver(Protocol):
    """sees what the tasks did (the embedded mode's live view); must not block."""

    def recomputed(self, playlist_uri: str, cid: str, refreshed: Refreshed) -> None: ...

    def forgot(self, playlist_uri: str) -> None: ...

    def dropped(self, playlist_uri: str, reason: str) -> None: ...


@dataclass
class Services:
    settings: Settings
    redis: Any  # redis.asyncio.Redis, or fakeredis in the embedded mode
    cache: RecommendationCache
    catalog: Catalog
    store: VectorStore | None
    recommender: Recommender
    counts: Counter[str] = field(default_factory=Counter)
    observer: TaskObserver | None = None


_UNSET: Any = object()


def connect_redis(url: str | None) -> Any:
    """a Redis client for `url`, or the embedded in-process Redis when it is unset."""
    if url is None:
        import fakeredis  # the embedded mode only: nothing survives the process

        return fakeredis.FakeAsyncRedis()
    return aioredis.Redis.from_url(
        url,
        socket_timeout=REDIS_SOCKET_TIMEOUT,
        socket_connect_timeout=REDIS_SOCKET_TIMEOUT,
        health_check_interval=30,
    )


def consumer_config(settings: Settings, *, hosts: tuple[str, ...] | None = None) -> ConsumerConfig:
    """the consumer as configured; `hosts` overrides the settings' endpoints (the
    embedded mode points it at its own replay server)."""
    return ConsumerConfig(
        hosts=hosts or settings.jetstream_hosts,
        limits=frame_limits(settings),
        debounce_seconds=settings.debounce_seconds,
        batch_frames=settings.jetstream_batch_frames,
        cursor_flush_seconds=settings.jetstream_cursor_flush_seconds,
        cursor_rewind_seconds=settings.jetstream_cursor_rewind_seconds,
        rotation_rewind_seconds=settings.jetstream_rotation_rewind_seconds,
        lost_state_rewind_seconds=settings.jetstream_lost_state_rewind_seconds,
        backoff_base_seconds=settings.jetstream_backoff_base_seconds,
        backoff_cap_seconds=settings.jetstream_backoff_cap_seconds,
        open_timeout_seconds=settings.jetstream_open_timeout_seconds,
        rev_ttl_seconds=settings.jetstream_rev_ttl_seconds,
        stats_seconds=settings.jetstream_stats_seconds,
        flood=FloodLimits(
            changes_per_minute=settings.jetstream_did_changes_per_minute,
            burst=settings.jetstream_did_burst,
            max_pending=settings.jetstream_did_max_pending,
            max_pending_bytes=settings.jetstream_did_max_pending_bytes,
            max_total_pending_bytes=settings.jetstream_max_pending_bytes,
        ),
    )


def frame_limits(settings: Settings) -> FrameLimits:
    """the bounds a frame and its list record must fit in (the consumer's, and the
    API's for a record it reads from a PDS)."""
    return FrameLimits(
        list_collection=settings.list_collection,
        max_frame_bytes=settings.jetstream_max_frame_bytes,
        record=RecordLimits(
            track_collection=settings.track_collection,
            max_items=settings.list_max_items,
            max_name_length=settings.list_max_name_length,
        ),
    )


def store_from_settings(settings: Settings) -> VectorStore | None:
    """turbopuffer when an API key is set, else None (recommendations unavailable)."""
    if settings.turbopuffer_api_key is None:
        return None
    from engine.turbopuffer_store import TurbopufferStore

    return TurbopufferStore(
        api_key=settings.turbopuffer_api_key.get_secret_value(),
        namespace=settings.turbopuffer_namespace,
        region=None if settings.turbopuffer_base_url else settings.turbopuffer_region,
        base_url=settings.turbopuffer_base_url,
        timeout=settings.turbopuffer_timeout_seconds,
        max_retries=settings.turbopuffer_max_retries,
    )


@asynccontextmanager
async def open_services(
    settings: Settings,
    *,
    redis: Any = _UNSET,
    catalog: Catalog | None = None,
    store: VectorStore | None = _UNSET,
) -> AsyncIterator[Services]:
    """open (and finally close) what `settings` names; parts handed in are used as they are."""
    async with AsyncExitStack() as stack:
        if redis is _UNSET:
            redis = connect_redis(settings.redis_url)
            stack.push_async_callback(redis.aclose)
        if catalog is None:
            if settings.database_url is None:
                raise ConfigurationError(
                    "DATABASE_URL is not set: the worker and the API read plyr.fm's "
                    "PostgreSQL (or use `plyr-recs run` for the embedded demo)"
                )
            from engine.postgres_catalog import PostgresCatalog

            catalog = await stack.enter_async_context(
                await PostgresCatalog.connect(
                    settings.database_url.get_secret_value(), pool_size=settings.database_pool_size
                )
            )
        if store is _UNSET:
            store = store_from_settings(settings)
            if store is None:
                logger.warning("TURBOPUFFER_API_KEY is not set: recommendations are unavailable")
            else:
                closer = getattr(store, "aclose", None)
                if closer is not None:
                    stack.push_async_callback(closer)
        cache = RecommendationCache(redis)
        recommender = Recommender(
            catalog=catalog, store=store, cache=cache, fusion=settings.fusion_mode
        )
        yield Services(settings, redis, cache, catalog, store, recommender)


_installed: list[Services] = []


@contextmanager
def installed(services: Services) -> Iterator[Services]:
    """make `services` the ones docket tasks of this process use, for the block's duration."""
    _installed.append(services)
    try:
        yield services
    finally:
        _installed.remove(services)


def current_services() -> Services:
    """the installed services (a docket dependency of every task)."""
    if not _installed:
        raise RuntimeError("no services installed: run tasks inside `services.installed(...)`")
    return _installed[-1]
