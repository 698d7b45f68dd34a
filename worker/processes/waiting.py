"""waiting, a bounded time, for the Redis and PostgreSQL a process needs at start.

a deploy may start the worker before its Redis answers; a wrong URL must not
leave it running forever either (docket's own loop logs "Redis is unavailable,
sleeping for 1 second" without saying which Redis, and never gives up). so a
process waits `STARTUP_WAIT_SECONDS`, logging the URL it waits for (password
redacted), then refuses to start with one line. a refusal that waiting cannot
change (a wrong password, an unknown database) ends the wait at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

import redis.asyncio as aioredis
import redis.exceptions

from engine.ports import CatalogQueryError, CatalogUnavailableError
from worker.processes.startup import redacted
from worker.wiring import ConfigurationError

logger = logging.getLogger(__name__)

ATTEMPT_TIMEOUT_SECONDS: Final = 3.0
RETRY_SECONDS: Final = 1.0
# errors that mean "not yet": the server is down, restarting or unreachable
REDIS_NOT_YET: Final = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    OSError,
)
# errors that mean "never, with these settings": refused at once
REDIS_NEVER: Final = (
    redis.exceptions.AuthenticationError,
    redis.exceptions.AuthorizationError,
    redis.exceptions.ResponseError,
)


async def wait_for_redis(setting: str, url: str, *, seconds: float) -> None:
    """return once the Redis at `url` answers a PING; `ConfigurationError` naming
    `setting` when it did not within `seconds`, or refused us for good."""

    async def ping() -> None:
        client = aioredis.Redis.from_url(
            url,
            socket_timeout=ATTEMPT_TIMEOUT_SECONDS,
            socket_connect_timeout=ATTEMPT_TIMEOUT_SECONDS,
        )
        try:
            await client.ping()
        finally:
            await client.aclose()

    def classify(error: Exception) -> bool | None:
        if isinstance(error, REDIS_NEVER):
            return False
        return True if isinstance(error, REDIS_NOT_YET) else None

    await _wait(setting, url, seconds=seconds, attempt=ping, retryable=classify)


async def wait_for_database(dsn: str, *, seconds: float) -> None:
    """return once plyr.fm's PostgreSQL at `dsn` accepts a connection; as above."""
    from engine.postgres_catalog import PostgresCatalog

    async def connect() -> None:
        catalog = await PostgresCatalog.connect(dsn, pool_size=1, timeout=ATTEMPT_TIMEOUT_SECONDS)
        await catalog.aclose()

    def classify(error: Exception) -> bool | None:
        if isinstance(error, CatalogQueryError):
            return False  # a wrong password, an unknown database: waiting changes nothing
        return True if isinstance(error, CatalogUnavailableError) else None

    await _wait("DATABASE_URL", dsn, seconds=seconds, attempt=connect, retryable=classify)


async def _wait(
    setting: str,
    url: str,
    *,
    seconds: float,
    attempt: Callable[[], Awaitable[None]],
    retryable: Callable[[Exception], bool | None],
) -> None:
    shown = redacted(url)
    deadline = time.monotonic() + seconds
    said = False
    while True:
        try:
            await attempt()
        except Exception as error:  # classified just below; a bug is re-raised
            verdict = retryable(error)
            if verdict is None:
                raise
            reason = str(error) or type(error).__name__
            if not verdict:
                raise ConfigurationError(
                    f"{setting} ({shown}) refused us: {reason}. Fix {setting}."
                ) from None
            if time.monotonic() + RETRY_SECONDS > deadline:
                raise ConfigurationError(
                    f"{setting} ({shown}) did not answer within {seconds:g} s ({reason}). "
                    f"Check that it is up and reachable from here, or fix {setting} "
                    "(STARTUP_WAIT_SECONDS sets the wait)."
                ) from None
            if not said:
                logger.warning(
                    "waiting up to %g s for %s (%s): %s", seconds, setting, shown, reason
                )
                said = True
            await asyncio.sleep(RETRY_SECONDS)
            continue
        if said:
            logger.info("%s (%s) answers", setting, shown)
        return
