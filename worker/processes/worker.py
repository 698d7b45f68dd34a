"""`plyr-recs worker`: runs the recompute and forget tasks the Jetstream consumer enqueues,
and the perpetual loops: the withdrawal check (one round a second across all
workers) and the reconcile loop that keeps every live playlist's current version cached.

any number of these run, on any machines sharing the docket Redis: docket hands
each task to one worker and redelivers it if that worker dies mid-task.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from docket import Docket, Worker

from worker.ops.heap import settle_worker_heap
from worker.processes.ops import wait_for_dependencies, worker_ops
from worker.recs.services import installed, open_services
from worker.settings import Settings
from worker.tasks.playlist import TASKS
from worker.tasks.reconcile import PERPETUAL_TASKS, RECONCILE_TASKS
from worker.tasks.withdrawals import check_withdrawals
from worker.wiring import open_docket, require_shared_docket

logger = logging.getLogger(__name__)

# how long a task may stay claimed by a silent worker before another takes it over;
# above the task timeout (2 min), so a slow but alive worker is not doubled up
# (`WORKER_REDELIVERY_SECONDS` in production; this is its default)
REDELIVERY_TIMEOUT = timedelta(minutes=3)
# how long a worker waits to reconnect after Redis failed it. docket's default (5 s)
# was most of the time a Redis restart took to recover from in the reliability
# report (`python -m bench.reliability.report`); a reconnect a second is no load.
RECONNECTION_DELAY = timedelta(seconds=1)
# docket's `minimum_check_interval` (`WORKER_CHECK_SECONDS` in production; this is its
# default). a worker with every slot busy sleeps it before looking again: docket's
# own 0.25 s held 6 slots to 24 recomputes a second, a cold deploy of 2,000 to ~85 s
CHECK_INTERVAL = timedelta(milliseconds=50)


# the docket keys of the perpetual loops (an automatic perpetual is keyed by its
# function's name): always scheduled, so never "work left" to whoever waits for idle
PERPETUAL_KEYS: frozenset[str] = frozenset(
    task.__name__ for task in (*PERPETUAL_TASKS, check_withdrawals)
)


def register_tasks(
    docket: Docket, *, withdrawal_round: bool = False, reconcile: bool = False
) -> None:
    """the worker's task registry (pinned by a test against what the consumer enqueues),
    and the perpetual loops it is to run: docket schedules every automatic perpetual
    registered, so a loop a worker is not to run is not registered there."""
    for task in (*TASKS, *RECONCILE_TASKS):
        if task is not check_withdrawals or withdrawal_round:
            docket.register(task)
    if reconcile:
        for task in PERPETUAL_TASKS:
            docket.register(task)


def build_worker(
    docket: Docket,
    *,
    concurrency: int,
    redelivery_timeout: timedelta = REDELIVERY_TIMEOUT,
    check_interval: timedelta = CHECK_INTERVAL,
    automatic: bool = False,
    reconcile: bool | None = None,
) -> Worker:
    """a worker of every task. with `automatic` it runs the withdrawal check round, and
    with `reconcile` (by default: as `automatic`) the reconcile loop: docket schedules
    each at start if no worker has, so one of each runs however many workers there
    are. `plyr-recs worker` and `plyr-recs run` run both; tests choose, since a
    perpetual never lets a queue drain."""
    reconcile = automatic if reconcile is None else reconcile
    register_tasks(docket, withdrawal_round=automatic, reconcile=reconcile)
    return Worker(
        docket,
        concurrency=concurrency,
        redelivery_timeout=redelivery_timeout,
        # with every slot busy docket sleeps this long before it looks again, and an
        # idle worker's queue read blocks this long (WORKER_CHECK_SECONDS)
        minimum_check_interval=check_interval,
        reconnection_delay=RECONNECTION_DELAY,
        schedule_automatic_tasks=automatic or reconcile,
    )


def configured_worker(docket: Docket, settings: Settings) -> Worker:
    """the worker of `plyr-recs worker` and `plyr-recs run`: every task and both
    perpetual loops, as the settings say."""
    return build_worker(
        docket,
        concurrency=settings.worker_concurrency,
        redelivery_timeout=timedelta(seconds=settings.worker_redelivery_seconds),
        check_interval=timedelta(seconds=settings.worker_check_seconds),
        automatic=True,
    )


@contextmanager
def stop_on_signals(task: asyncio.Task[None]) -> Iterator[None]:
    """SIGTERM/SIGINT cancel `task` (docket redelivers what was in flight)."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    try:
        yield
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


async def serve(settings: Settings) -> None:
    """run a worker until SIGTERM/SIGINT."""
    require_shared_docket(settings, why="a worker of its own would never see the consumer's tasks")
    await wait_for_dependencies(settings, database=True)
    async with (
        open_services(settings) as services,
        open_docket(settings) as docket,
        worker_ops(settings, services, docket) as metrics,
    ):
        if services.observer is None:  # the embedded mode's live view keeps its own
            services.observer = metrics
        worker = configured_worker(docket, settings)
        with installed(services):
            async with worker:
                # what start-up built is there for good (worker.ops.heap)
                settle_worker_heap()
                running = asyncio.create_task(worker.run_forever())
                with stop_on_signals(running):
                    logger.info(
                        "worker %s on docket %r, concurrency %d",
                        worker.name,
                        settings.docket_name,
                        settings.worker_concurrency,
                    )
                    try:
                        await running
                    except asyncio.CancelledError:
                        logger.info("worker stopping")
