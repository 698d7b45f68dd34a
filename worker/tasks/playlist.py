"""the docket tasks: what the Jetstream consumer enqueues and `plyr-recs worker` runs.

their names, docket keys and argument bounds are the contract in
`jetstream.contract`; the process running the consumer hands it `PLAYLIST_TASKS`:

- `recompute_playlist(playlist_uri, cid, rev, track_uris)` under the docket key
  `recompute_key(playlist_uri)`, replaced on every accepted edit so rapid edits
  collapse into one run of the newest state;
- `forget_playlist(playlist_uri, rev)` on a delete. it leaves a marker (the
  delete's rev, 24 h): a recompute of an older rev that outlived the forget (a
  retry, a redelivery) is dropped instead of caching a deleted playlist again.

policy lives in the parameters, where docket reads it: retries with exponential
backoff on transient faults, a timeout. one run per playlist at a time is a
leased lock (`worker.tasks.playlist_lock`; a busy playlist is retried like a transient
fault), not docket's `ConcurrencyLimit`, whose parking loses edits. a permanent
fault is logged and the task returns: dropped on purpose, not retried.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import timedelta

from docket import Depends, ExponentialRetry, Timeout

from engine.errors import InvalidInputError
from jetstream.contract import (
    LIST_URI_RE,
    MAX_CID_LENGTH,
    MAX_REV_LENGTH,
    MAX_TRACK_URI_LENGTH,
    MAX_TRACK_URIS,
    TaskFunctions,
)
from jetstream.faults import FAULTS
from worker.tasks.playlist_lock import PlaylistBusy, playlist_lock
from worker.tasks.services import Services, current_services
from worker.tasks.withdrawals import WITHDRAWAL_TASKS

logger = logging.getLogger(__name__)

# transient faults: 1 s, 2 s, 4 s ... capped at a minute, 12 attempts (~6 minutes)
RECOMPUTE_ATTEMPTS = 12
RETRY_MIN_DELAY = timedelta(seconds=1)
RETRY_MAX_DELAY = timedelta(seconds=60)
TASK_TIMEOUT = timedelta(seconds=120)
# waiting for plyr.fm to ingest a playlist it doesn't know yet: 1 s, 2 s ... 30 s
INGEST_RETRY_BASE_SECONDS = 1.0
INGEST_RETRY_CAP_SECONDS = 30.0

# what to do with a fault is decided by its kind (`engine.errors`), Redis' included;
# anything else is a bug and surfaces as one (docket logs it), never a quiet drop.
TRANSIENT = FAULTS.transient
PERMANENT = FAULTS.permanent


def ingest_retry_delay(attempt: int, budget_seconds: float) -> float | None:
    """the wait before attempt `attempt + 1` for a playlist plyr.fm doesn't know yet,
    or None once `budget_seconds` of waiting have been spent (then it is dropped)."""
    waited = sum(
        min(INGEST_RETRY_BASE_SECONDS * 2**i, INGEST_RETRY_CAP_SECONDS) for i in range(attempt - 1)
    )
    remaining = budget_seconds - waited
    if remaining <= 0:
        return None
    return float(
        min(INGEST_RETRY_BASE_SECONDS * 2 ** (attempt - 1), INGEST_RETRY_CAP_SECONDS, remaining)
    )


def _one_run_per_playlist(
    services: Services, playlist_uri: str
) -> AbstractAsyncContextManager[None]:
    """the playlist's lock, leased as long as docket waits for a silent worker: a
    worker killed while holding it delays that playlist no longer than its task."""
    return playlist_lock(
        services.redis, playlist_uri, lease_seconds=services.settings.worker_redelivery_seconds
    )


def check_arguments(playlist_uri: str, cid: str, rev: str, track_uris: list[str]) -> None:
    """the task's arguments come from the network (via the consumer): bound them again."""
    if not isinstance(playlist_uri, str) or not LIST_URI_RE.fullmatch(playlist_uri):
        raise InvalidInputError(f"not a list record URI: {playlist_uri!r:.120}")
    if not isinstance(cid, str) or not 0 < len(cid) <= MAX_CID_LENGTH:
        raise InvalidInputError("missing or oversized record CID")
    if not isinstance(rev, str) or len(rev) > MAX_REV_LENGTH:
        raise InvalidInputError("oversized rev")
    if not isinstance(track_uris, list) or len(track_uris) > MAX_TRACK_URIS:
        raise InvalidInputError(f"track_uris must be a list of at most {MAX_TRACK_URIS} URIs")
    if not all(isinstance(uri, str) and len(uri) <= MAX_TRACK_URI_LENGTH for uri in track_uris):
        raise InvalidInputError("track_uris must be strings")


async def recompute_playlist(
    playlist_uri: str,
    cid: str,
    rev: str,
    track_uris: list[str],
    refresh: bool = False,
    retry: ExponentialRetry = ExponentialRetry(
        attempts=RECOMPUTE_ATTEMPTS, minimum_delay=RETRY_MIN_DELAY, maximum_delay=RETRY_MAX_DELAY
    ),
    deadline: Timeout = Timeout(TASK_TIMEOUT),
    services: Services = Depends(current_services),
) -> None:
    """compute (or reuse) a playlist's recommendations for its record version `cid`;
    `refresh` (the reconcile loop, before an active playlist's entry expires)
    recomputes even a cached version."""
    counts = services.counts
    try:
        check_arguments(playlist_uri, cid, rev, track_uris)
        async with _one_run_per_playlist(services, playlist_uri):
            deleted_at = await services.cache.deleted_rev(playlist_uri)
            # revs are TIDs (they sort by time): a record re-created after its
            # delete carries a newer one. checked under the lock the forget holds too.
            if deleted_at is not None and rev <= deleted_at:
                counts["dropped:deleted"] += 1
                logger.info("dropping recompute of %s: deleted at rev %s", playlist_uri, deleted_at)
                if services.observer is not None:
                    services.observer.dropped(playlist_uri, "deleted since")
                return
            playlist = await services.catalog.resolve_playlist(playlist_uri)
            if playlist is None:
                delay = ingest_retry_delay(retry.attempt, services.settings.playlist_wait_seconds)
                if delay is None:
                    counts["dropped:unknown_playlist"] += 1
                    logger.info("dropping %s: plyr.fm has no such playlist", playlist_uri)
                    if services.observer is not None:
                        services.observer.dropped(playlist_uri, "unknown playlist")
                    return
                counts["waiting:unknown_playlist"] += 1
                retry.after(timedelta(seconds=delay))
            await services.cache.remember_playlist(playlist_uri, playlist.playlist_id)
            refreshed = await services.recommender.refresh(
                playlist.playlist_id,
                cid,
                track_uris=track_uris,
                rev=rev,
                owner_did=playlist.owner_did,
                force=refresh is True,
            )
    except PlaylistBusy:
        counts["retried:busy"] += 1
        logger.info("recompute of %s waits: another run of it is under way", playlist_uri)
        raise
    except TRANSIENT as error:
        counts["retried:transient"] += 1
        logger.warning("recompute of %s will be retried: %s", playlist_uri, error)
        raise
    except PERMANENT as error:
        counts["dropped:permanent"] += 1
        logger.error("dropping recompute of %s: %s", playlist_uri, error)
        if services.observer is not None:
            services.observer.dropped(playlist_uri, str(error))
        return
    except Exception:
        # a bug, not a fault: counted apart, and raised for docket to log and retry
        counts["failed:unexpected"] += 1
        raise
    counts[f"recompute:{refreshed.outcome.value}"] += 1
    if services.observer is not None:
        services.observer.recomputed(playlist_uri, cid, refreshed)
    logger.info(
        "recompute %s cid=%s: %s in %.1f ms",
        playlist_uri,
        cid,
        refreshed.outcome.value,
        refreshed.seconds * 1e3,
    )


async def forget_playlist(
    playlist_uri: str,
    rev: str = "",
    retry: ExponentialRetry = ExponentialRetry(
        attempts=RECOMPUTE_ATTEMPTS, minimum_delay=RETRY_MIN_DELAY, maximum_delay=RETRY_MAX_DELAY
    ),
    services: Services = Depends(current_services),
) -> None:
    """drop a deleted playlist's cached recommendations and state (the delete's `rev`
    keeps a late forget from erasing a re-created playlist's newer answers)."""
    try:
        # the recompute's lock: a forget and a recompute of one playlist never overlap
        async with _one_run_per_playlist(services, playlist_uri):
            if rev:
                # first, and whatever is cached: a recompute of this record still
                # retrying (it may not even know its playlist yet) must find it
                await services.cache.mark_deleted(playlist_uri, rev)
            playlist_id = await services.cache.playlist_id_for(playlist_uri)
            if playlist_id is None:
                playlist = await services.catalog.resolve_playlist(playlist_uri)
                playlist_id = playlist.playlist_id if playlist is not None else None
            if playlist_id is None:
                services.counts["forget:unknown"] += 1
                return
            state = await services.cache.get_state(playlist_id)
            if rev and state is not None and state.rev > rev:
                services.counts["forget:superseded"] += 1
                logger.info("not forgetting %s: re-created since (rev %s)", playlist_uri, state.rev)
                return
            deleted = await services.cache.forget(playlist_id, playlist_uri=playlist_uri)
    except PlaylistBusy:
        services.counts["retried:busy"] += 1
        logger.info("forget of %s waits: another run of it is under way", playlist_uri)
        raise
    except TRANSIENT as error:
        logger.warning("forget of %s will be retried: %s", playlist_uri, error)
        raise
    except PERMANENT as error:
        logger.error("dropping forget of %s: %s", playlist_uri, error)
        return
    except Exception:
        services.counts["failed:unexpected"] += 1
        raise
    services.counts["forget:done"] += 1
    if services.observer is not None:
        services.observer.forgot(playlist_uri)
    logger.info("forgot %s (%d keys)", playlist_uri, deleted)


# every task `plyr-recs worker` registers; a test pins that the consumer
# enqueues nothing outside this list. the withdrawal tasks: worker.tasks.withdrawals.
TASKS: list[Callable[..., Awaitable[None]]] = [
    recompute_playlist,
    forget_playlist,
    *WITHDRAWAL_TASKS,
]
# what the process running the consumer hands it (the consumer never imports the worker)
PLAYLIST_TASKS = TaskFunctions(recompute=recompute_playlist, forget=forget_playlist)
