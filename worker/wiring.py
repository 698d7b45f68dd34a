"""the process's wiring: `Settings` turned into what each part is configured with.

the one Redis client factory, the consumer's config, the vector store, the frame
limits the API shares with the consumer. what the tasks and the API then work
with (cache, catalog, store, recommender) is opened by `worker.recs.services`.
"""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio as aioredis
from docket import Docket
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.maint_notifications import MaintNotificationsConfig

from engine.ports import VectorStore
from jetstream.config import ConsumerConfig
from jetstream.contract import EXECUTION_TTL
from jetstream.frames import FrameLimits
from worker.identity.pds import PdsRecords
from worker.settings import (
    JetstreamSettings,
    RedisSettings,
    Settings,
    TurbopufferSettings,
)
from worker.settings.feeds import build
from worker.store.redis_packing import pack_with_hiredis

logger = logging.getLogger(__name__)

REDIS_SOCKET_TIMEOUT = 5.0  # seconds; a hung Redis must not hang a task or a request
# a command that fails on its connection is sent again on a fresh one, this many
# times, after 10 ms, 20 ms ... (at most 0.2 s): a restart, a failover or an idle
# timeout closes every pooled connection at once, and each must cost nobody an answer.
REDIS_COMMAND_RETRIES = 2
REDIS_HEALTH_CHECK_SECONDS = 10


class ConfigurationError(RuntimeError):
    """a process cannot start with these settings (the message says what to set)."""


def require_shared_docket(settings: RedisSettings, *, why: str) -> None:
    """refuse the embedded docket (`memory://`) in a process of its own: its tasks
    would stay in that process. `why` says what would be lost, for the message."""
    if settings.docket_url.startswith("memory://"):
        raise ConfigurationError(
            f"DOCKET_URL is memory://: {why}. Point DOCKET_URL at the Redis the workers "
            "share, or use `plyr-recs run` for the embedded mode."
        )


def connect_redis(url: str | None) -> Any:
    """a Redis client for `url`, or the embedded in-process Redis when it is unset.

    a pooled connection the server closed (a restart, a failover, a proxy's or the
    server's idle `timeout`) must be noticed before a command is sent on it. redis-py
    8.1 (locked here; the newest release) skips that check when RESP3's maintenance
    notifications are on, which its default ("auto") turns on for every RESP3 pool
    (redis/redis-py#4252, fixed upstream after 8.1): every dead connection then fails
    one command. nothing here uses those notifications (they are for Redis Cloud's
    planned failovers), so they are off and the check runs; the retry on a fresh
    connection covers what is left (a server gone between the check and the command).
    `tests/test_redis_connections.py` pins both against a real redis-server. commands
    are packed by hiredis, in C, as redis-py's synchronous client packs them
    (`worker.store.redis_packing`).
    """
    if url is None:
        import fakeredis  # the embedded mode only: nothing survives the process

        return fakeredis.FakeAsyncRedis()
    client = aioredis.Redis.from_url(
        url,
        socket_timeout=REDIS_SOCKET_TIMEOUT,
        socket_connect_timeout=REDIS_SOCKET_TIMEOUT,
        health_check_interval=REDIS_HEALTH_CHECK_SECONDS,
        maint_notifications_config=MaintNotificationsConfig(enabled=False),
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.01), REDIS_COMMAND_RETRIES),
        # not on timeouts: a hung server would be waited for three times over
        retry_on_error=[RedisConnectionError],
    )
    pack_with_hiredis(client.connection_pool)
    return client


def open_docket(settings: RedisSettings) -> Docket:
    """the docket queue as configured (enter it with `async with`); finished runs are
    kept only `EXECUTION_TTL`, since each holds a copy of its arguments."""
    return Docket(name=settings.docket_name, url=settings.docket_url, execution_ttl=EXECUTION_TTL)


def consumer_config(
    settings: JetstreamSettings, *, hosts: tuple[str, ...] | None = None
) -> ConsumerConfig:
    """the consumer as configured; `hosts` overrides the settings' endpoints (the
    embedded mode points it at its own replay server). every other field, the flood,
    frame and record limits included, comes from the setting that feeds it
    (`worker.settings.feeds`)."""
    return build(ConsumerConfig, settings, hosts=hosts or settings.jetstream_hosts)


def frame_limits(settings: JetstreamSettings) -> FrameLimits:
    """the bounds a frame and its list record must fit in (the consumer's, and the
    API's for a record it reads from a PDS)."""
    return build(FrameLimits, settings)


def store_from_settings(settings: TurbopufferSettings) -> VectorStore | None:
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


def with_vector_cache(settings: TurbopufferSettings, store: VectorStore) -> VectorStore:
    """`store` behind this process's vector cache (engine.vector_cache), unless
    VECTOR_CACHE_SIZE is 0. it goes in front of everything else around the store: a
    lookup it answers costs turbopuffer nothing, not even a slot of the shared budget."""
    if settings.vector_cache_size == 0:
        return store
    from engine.vector_cache import VectorCache

    return VectorCache(
        store,
        max_vectors=settings.vector_cache_size,
        ttl_seconds=settings.vector_cache_ttl_seconds,
    )


def pds_client(settings: Settings) -> PdsRecords:
    """the reconcile loop's PDS client (one per worker process: its memory of failing
    hosts and refused records outlives each pass)."""
    limits = frame_limits(settings)
    return PdsRecords(
        limits=limits.record,
        list_collection=limits.list_collection,
        timeout_seconds=settings.pds_timeout_seconds,
        allow_private=settings.pds_allow_private,
    )
