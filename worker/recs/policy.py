"""the failure policy of every task, declared once: what a fault means is decided by
its kind (`engine.errors`, Redis' included: `jetstream.faults`), never by the task.

- the playlist busy (another run holds its lock): retried by docket's backoff;
- a transient fault (turbopuffer, PostgreSQL, Redis, a lease lost before the
  write): counted, logged, retried with backoff;
- a permanent fault (bad input, a refused record): counted, logged, dropped;
- docket's own `ForcedRetry` (`retry.after`: an expected wait, such as plyr.fm's
  ingest of a playlist it does not know yet): passed on, not a fault;
- anything else is a bug: counted apart and raised, for docket to log and retry.

the tasks' retry, timeout, lease and ingest wait are parameters of their
signatures (`worker.tasks.playlist`), as docket declares policy: `BACKOFF`,
`TASK_TIMEOUT`, and the two dependencies below, read from the settings.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Final

from docket import Depends, ExponentialRetry
from docket.dependencies import ForcedRetry

from jetstream.faults import FAULTS
from worker.recs.services import Services, current_services
from worker.store.lock import LeaseLost, PlaylistBusy

logger = logging.getLogger(__name__)

# transient faults: 1 s, 2 s, 4 s ... capped at a minute, 12 attempts (~6 minutes)
ATTEMPTS: Final = 12
RETRY_MIN_DELAY: Final = timedelta(seconds=1)
RETRY_MAX_DELAY: Final = timedelta(seconds=60)
TASK_TIMEOUT: Final = timedelta(seconds=120)


# the retry every task declares as its `retry` parameter's default (docket makes a
# fresh one for each run from it, as from any default in a signature)
BACKOFF: Final = ExponentialRetry(
    attempts=ATTEMPTS, minimum_delay=RETRY_MIN_DELAY, maximum_delay=RETRY_MAX_DELAY
)


def lease_seconds(services: Services = Depends(current_services)) -> float:
    """the playlist lock's lease: as long as docket waits for a silent worker
    (`WORKER_REDELIVERY_SECONDS`), so a worker killed while holding it delays that
    playlist no longer than its task's redelivery."""
    return services.settings.worker_redelivery_seconds


def ingest_wait_seconds(services: Services = Depends(current_services)) -> float:
    """how long a task waits for plyr.fm to ingest a playlist it does not know yet
    (`PLAYLIST_WAIT_SECONDS`) before it is dropped."""
    return services.settings.playlist_wait_seconds


@asynccontextmanager
async def failure_policy(
    counts: Counter[str],
    task: str,
    subject: str,
    *,
    dropped: Callable[[str], None] | None = None,
) -> AsyncIterator[None]:
    """run a task's body under the policy; a permanent fault ends the block quietly
    (the task returns), everything else retried is raised. `dropped(reason)` hears of
    each drop (the embedded mode's live view)."""
    try:
        yield
    except ForcedRetry:
        raise  # an expected wait the task asked for; counted by the task
    except PlaylistBusy:
        counts["retried:busy"] += 1
        logger.info("%s of %s waits: another run of it is under way", task, subject)
        raise
    except LeaseLost as error:
        counts["retried:lease_lost"] += 1
        logger.warning("%s of %s will be retried: %s", task, subject, error)
        raise
    except FAULTS.transient as error:
        counts["retried:transient"] += 1
        logger.warning("%s of %s will be retried: %s", task, subject, error)
        raise
    except FAULTS.permanent as error:
        counts["dropped:permanent"] += 1
        logger.error("dropping %s of %s: %s", task, subject, error)
        if dropped is not None:
            dropped(str(error))
    except Exception:
        counts["failed:unexpected"] += 1
        raise
