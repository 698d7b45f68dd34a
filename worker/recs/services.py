"""what the tasks and the API work with: the cache, catalog, vector store and recommender.

opened once per process from `Settings` (or handed in by `plyr-recs run` and the
tests), installed, and reached by the docket tasks through a dependency
(`current_services`). the real adapters are opened here and closed when the
process stops.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from engine.coalescing_catalog import CoalescingCatalog
from engine.coalescing_store import coalescing
from engine.ports import Catalog, MultiQueryStore, VectorStore
from engine.query_gate import GatedStore
from worker.identity.pds import PdsRecords
from worker.ops.traced import (
    CACHE_METHODS,
    GATE_METHODS,
    PDS_METHODS,
    POSTGRES_METHODS,
    TURBOPUFFER_METHODS,
    traced,
)
from worker.ops.tracing import tracing_enabled
from worker.recs.recommender import Ensured, Recommender
from worker.settings import Settings
from worker.store.cache import RecommendationCache
from worker.store.speculative import SpeculativeAnswers
from worker.store.store_budget import BudgetedStore, SharedStoreBudget, patient_slot
from worker.wiring import (
    ConfigurationError,
    connect_redis,
    pds_client,
    store_from_settings,
    with_vector_cache,
)

logger = logging.getLogger(__name__)


class TaskObserver(Protocol):
    """sees what the tasks did (the embedded mode's live view); must not block."""

    def recomputed(self, playlist_uri: str, cid: str, refreshed: Ensured) -> None: ...

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
    # the reconcile loop's PDS client, for the process's life (None: one per pass)
    pds: PdsRecords | None = None


_UNSET: Any = object()


@asynccontextmanager
async def open_services(
    settings: Settings,
    *,
    redis: Any = _UNSET,
    catalog: Catalog | None = None,
    store: VectorStore | None = _UNSET,
    foreground: bool = False,
) -> AsyncIterator[Services]:
    """open (and finally close) what `settings` names; parts handed in are used as they are.
    `foreground`: the API's, whose turbopuffer requests may use the slots reserved for
    inline computes (`worker.store.store_budget`)."""
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
            # the recomputes a shared turbopuffer answer wakes together hydrate their
            # candidates in one statement (engine.coalescing_catalog)
            catalog = CoalescingCatalog(catalog)
        if store is _UNSET:
            store = raw_store = store_from_settings(settings)
            if store is not None:
                # concurrent runs' requests shared (engine.coalescing_store): under the
                # budget, so each run still holds its slot while its part is in flight;
                # under the spans, so each run's span is its own wait
                store = coalescing(store)
            if store is not None and tracing_enabled():
                store = traced(store, system="turbopuffer", methods=TURBOPUFFER_METHODS)
            if store is None:
                logger.warning("TURBOPUFFER_API_KEY is not set: recommendations are unavailable")
            else:
                closer = getattr(store, "aclose", None)
                if closer is not None:
                    stack.push_async_callback(closer)
                if redis is not None:
                    # turbopuffer's concurrency limit is the deployment's, not this
                    # process's (no Redis, as the reliability report's oracle: no budget)
                    budget = store_budget(settings, redis)
                    store = BudgetedStore(store, budget, foreground=foreground)
                    if isinstance(raw_store, MultiQueryStore) and not foreground:
                        # a reconcile batch's searches sent together, under one slot
                        # (engine.query_gate); the store as it is outside a batch
                        store = GatedStore(store, raw_store, hold=partial(patient_slot, budget))
                        if tracing_enabled():
                            store = traced(store, system="turbopuffer", methods=GATE_METHODS)
                store = with_vector_cache(settings, store)
        cache = RecommendationCache(
            redis, ttl_seconds=settings.cache_ttl_seconds, list_collection=settings.list_collection
        )
        pds = pds_client(settings)
        stack.push_async_callback(pds.aclose)
        if tracing_enabled():
            # spans for what a recompute waits on (worker.ops.traced); none otherwise
            catalog = traced(catalog, system="postgresql", methods=POSTGRES_METHODS)
            cache = traced(cache, system="redis", methods=CACHE_METHODS, prefix="cache.")
            pds = traced(pds, system="pds", methods=PDS_METHODS)
        recommender = Recommender(
            catalog=catalog,
            store=store,
            cache=cache,
            fusion=settings.fusion_mode,
            max_per_artist=settings.max_tracks_per_artist,
            speculative=SpeculativeAnswers(redis),
        )
        yield Services(settings, redis, cache, catalog, store, recommender, pds=pds)


def store_budget(settings: Settings, redis: Any) -> SharedStoreBudget:
    """the deployment's turbopuffer budget, as configured."""
    return SharedStoreBudget(
        redis,
        limit=settings.turbopuffer_max_concurrent_queries,
        reserved=min(
            settings.turbopuffer_api_reserved_queries,
            settings.turbopuffer_max_concurrent_queries - 1,
        ),
        # above the client's own bound on a call (its timeout, times its retries)
        lease_seconds=settings.turbopuffer_timeout_seconds * (settings.turbopuffer_max_retries + 2),
        wait_seconds=2.0,
    )


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
