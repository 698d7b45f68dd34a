"""`plyr-recs jetstream`: the consumer as its own process, on the shared Redis.

this process exists so the firehose is followed exactly once for the whole
deployment (two consumers would double every recompute), independently of how
many workers and API instances run. it owns two Redis clients: its state
(REDIS_URL: cursor, rev guard, counters) and docket (DOCKET_URL), which may be
the same server.

it refuses the embedded defaults: with `DOCKET_URL=memory://` the tasks would
live in this process where no worker can reach them, and without `REDIS_URL`
the cursor would die with the process. `plyr-recs run` is the embedded mode.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from jetstream.consumer import JetstreamConsumer
from jetstream.status import ConsumerStatus, read_status
from worker.processes.ops import consumer_ops, wait_for_dependencies
from worker.settings import Settings
from worker.tasks.markers import WorkerMarkers
from worker.tasks.playlist import PLAYLIST_TASKS
from worker.tasks.withdrawals import withdrawal_handler
from worker.wiring import (
    ConfigurationError,
    connect_redis,
    consumer_config,
    open_docket,
    require_shared_docket,
)

logger = logging.getLogger(__name__)


def check_standalone(settings: Settings) -> str:
    """the REDIS_URL to use; `ConfigurationError` when the settings cannot work here."""
    require_shared_docket(
        settings, why="tasks enqueued here would stay in this process and no worker could run them"
    )
    if settings.redis_url is None:
        raise ConfigurationError(
            "REDIS_URL is not set: the cursor and the rev guard would not survive a "
            "restart. Set REDIS_URL, or use `plyr-recs run` for the embedded mode."
        )
    return settings.redis_url


async def run_standalone(settings: Settings) -> None:
    """consume until SIGTERM or SIGINT; a second signal stops without waiting."""
    redis_url = check_standalone(settings)
    config = consumer_config(settings)
    await wait_for_dependencies(settings, database=False)
    redis = connect_redis(redis_url)
    stop = asyncio.Event()
    _stop_on_signals(stop)
    try:
        async with open_docket(settings) as docket:
            consumer = JetstreamConsumer(
                config=config,
                redis=redis,
                docket=docket,
                tasks=PLAYLIST_TASKS,
                markers=WorkerMarkers(withdrawal_handler(docket)),
            )
            logger.info(
                "following %s on %d host(s), docket %r",
                config.limits.list_collection,
                len(config.hosts),
                settings.docket_name,
            )
            async with consumer_ops(settings, consumer, redis):
                try:
                    await consumer.run(stop)
                except asyncio.CancelledError:
                    # the second signal: `run` has still tried its final flush, and the
                    # cursor only ever covers finished work, so this loses nothing.
                    logger.warning("stopped without finishing the batch in hand")
    finally:
        await redis.aclose()


async def current_status(settings: Settings) -> ConsumerStatus:
    """the consumer's published counters and cursor, read from REDIS_URL."""
    if settings.redis_url is None:
        raise ConfigurationError(
            "REDIS_URL is not set: the status lives in the Redis the consumer writes to "
            "(the embedded mode's state is in-process and prints its own log)."
        )
    redis = connect_redis(settings.redis_url)
    try:
        return await read_status(redis, settings.list_collection)
    finally:
        await redis.aclose()


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()

    def request_stop(name: str) -> None:
        if stop.is_set() and main is not None:
            logger.warning("%s again: stopping without waiting", name)
            main.cancel()
            return
        logger.info("%s: finishing the batch in hand, flushing the cursor", name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, request_stop, signal.Signals(signum).name)
