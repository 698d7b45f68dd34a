"""the docket tasks the Jetstream consumer enqueues and `plyr-recs worker` runs.

their names, docket keys and argument bounds are the contract in
`jetstream.contract`; the process running the consumer hands it `PLAYLIST_TASKS`:

- `recompute_playlist(playlist_uri, cid, rev, track_uris)` under the docket key
  `recompute_key(playlist_uri)`, replaced on every accepted edit so rapid edits
  collapse into one run of the newest state (the reconcile loop enqueues the same
  task, with the version plyr.fm's database names);
- `forget_playlist(playlist_uri, rev)` on a delete. it leaves a marker (the
  delete's rev, 24 h): a recompute of an older rev that outlived the forget (a
  retry, a redelivery) is dropped instead of caching a deleted playlist again.

each is an argument check and one call into the one path (`worker.recs`); the
failure policy (`worker.recs.policy`), the retry, the timeout, the lease and the
wait for plyr.fm's ingest are in the signatures. one run per playlist at a time
is the playlist's lock (`worker.store.lock`; busy is retried like a transient
fault), not docket's `ConcurrencyLimit`, whose parking loses edits.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from docket import Depends, ExponentialRetry, Timeout

from engine.errors import InvalidInputError
from engine.types import PlaylistRef
from jetstream.contract import (
    LIST_URI_RE,
    MAX_CID_LENGTH,
    MAX_REV_LENGTH,
    MAX_TRACK_URI_LENGTH,
    MAX_TRACK_URIS,
    TaskFunctions,
)
from jetstream.syntax import is_tid
from worker.recs.policy import (
    BACKOFF,
    TASK_TIMEOUT,
    failure_policy,
    ingest_wait_seconds,
    lease_seconds,
)
from worker.recs.recommender import playlist_uris
from worker.recs.services import Services, current_services
from worker.recs.version import PlaylistVersion, is_newer
from worker.store.cache import BEFORE_RECOMPUTE_COMMANDS
from worker.store.lock import playlist_lock
from worker.store.store_budget import give_back_with_the_write
from worker.tasks.withdrawals import WITHDRAWAL_TASKS

logger = logging.getLogger(__name__)

# waiting for plyr.fm to ingest a playlist it doesn't know yet: 1 s, 2 s ... 30 s
INGEST_RETRY_BASE_SECONDS = 1.0
INGEST_RETRY_CAP_SECONDS = 30.0


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


def check_arguments(playlist_uri: str, cid: str, rev: str, track_uris: list[str]) -> None:
    """the task's arguments come from the network (via the consumer): bound them again."""
    if not isinstance(playlist_uri, str) or not LIST_URI_RE.fullmatch(playlist_uri):
        raise InvalidInputError(f"not a list record URI: {playlist_uri!r:.120}")
    if not isinstance(cid, str) or not 0 < len(cid) <= MAX_CID_LENGTH:
        raise InvalidInputError("missing or oversized record CID")
    # every version has a rev (worker.recs.version): an empty one sorted before all
    if not isinstance(rev, str) or len(rev) > MAX_REV_LENGTH or not is_tid(rev):
        raise InvalidInputError(f"not a rev: {rev!r:.40}")
    if not isinstance(track_uris, list) or len(track_uris) > MAX_TRACK_URIS:
        raise InvalidInputError(f"track_uris must be a list of at most {MAX_TRACK_URIS} URIs")
    if not all(isinstance(uri, str) and len(uri) <= MAX_TRACK_URI_LENGTH for uri in track_uris):
        raise InvalidInputError("track_uris must be strings")


# a playlist as plyr.fm's database knows it, and the ids of the tracks it knows
Resolved = tuple[PlaylistRef | None, dict[str, int]]


async def resolve(services: Services, playlist_uri: str, track_uris: list[str]) -> Resolved:
    """the playlist and its tracks, in one statement (a new version needs both)."""
    return await services.catalog.resolve_playlist_and_tracks(
        playlist_uri, playlist_uris(track_uris)
    )


def _dropped(services: Services, playlist_uri: str) -> Callable[[str], None]:
    def tell(reason: str) -> None:
        if services.observer is not None:
            services.observer.dropped(playlist_uri, reason)

    return tell


async def recompute_playlist(
    playlist_uri: str,
    cid: str,
    rev: str,
    track_uris: list[str],
    refresh: bool = False,
    retry: ExponentialRetry = BACKOFF,
    deadline: Timeout = Timeout(TASK_TIMEOUT),
    lease: float = Depends(lease_seconds),
    ingest_wait: float = Depends(ingest_wait_seconds),
    services: Services = Depends(current_services),
) -> None:
    """compute (or reuse) a playlist's recommendations for its record version `cid`
    at `rev`; `refresh` (the reconcile loop, before an active playlist's entry
    expires) recomputes even a cached version."""

    def unknown() -> None:
        delay = ingest_retry_delay(retry.attempt, ingest_wait)
        if delay is None:
            services.counts["dropped:unknown_playlist"] += 1
            logger.info("dropping %s: plyr.fm has no such playlist", playlist_uri)
            _dropped(services, playlist_uri)("unknown playlist")
            return
        # an expected wait (plyr.fm's ingest lags the firehose), not a fault
        services.counts["waiting:unknown_playlist"] += 1
        retry.after(timedelta(seconds=delay))

    await recompute_version(
        services,
        playlist_uri,
        cid,
        rev,
        track_uris,
        refresh=refresh,
        lease=lease,
        unknown=unknown,
    )


async def recompute_version(
    services: Services,
    playlist_uri: str,
    cid: str,
    rev: str,
    track_uris: list[str],
    *,
    refresh: bool,
    lease: float,
    unknown: Callable[[], None],
    resolved: Resolved | None = None,
) -> None:
    """the body of a recompute, whichever task runs it (`recompute_playlist`, one
    playlist; `worker.tasks.batch`, several the reconcile loop found due): checks,
    the playlist's lock, and the one path. `unknown()` is called when plyr.fm has
    no such playlist (yet): it raises to wait (docket's `ForcedRetry`), or returns and
    the playlist is dropped. `resolved`: the playlist and its tracks as the caller
    read them moments ago (a batch reads its items' at once), else read here. faults
    are counted and raised as `failure_policy` says."""
    counts = services.counts
    drop = _dropped(services, playlist_uri)
    async with failure_policy(counts, "recompute", playlist_uri, dropped=drop):
        check_arguments(playlist_uri, cid, rev, track_uris)
        playlist, known_tracks = resolved or await resolve(services, playlist_uri, track_uris)
        if playlist is None:
            unknown()  # raises to wait for plyr.fm's ingest; a return drops it
            return
        cache, recommender = services.cache, services.recommender
        version = PlaylistVersion(
            playlist.playlist_id, cid, rev, playlist.owner_did, tuple(track_uris)
        )
        force = refresh is True
        looked = recommender.look_keys(version, force=force)

        def along(pipe: Any) -> None:
            # the first reads, in the lock's own round trip (read under the lock)
            cache.queue_before_recompute(pipe, playlist_uri, playlist.playlist_id)
            for key in looked:
                pipe.get(key)

        # the write is the run's last step under the lock: it releases the lock and
        # gives back the engine run's turbopuffer slot in its own script (two round
        # trips fewer; `Lease`, `give_back_with_the_write`)
        async with (
            playlist_lock(
                services.redis,
                playlist.playlist_id,
                lease_seconds=lease,
                along=along,
                ends_with_write=True,
            ) as held,
            give_back_with_the_write(),
        ):
            # what is true now, not when the task was enqueued: a delete since (the
            # forget holds this lock too), or a newer version the consumer accepted
            deleted_at, accepted = cache.before_recompute(held.along[:BEFORE_RECOMPUTE_COMMANDS])
            if deleted_at is not None and not is_newer(rev, deleted_at):
                counts["dropped:deleted"] += 1
                logger.info("dropping recompute of %s: deleted at rev %s", playlist_uri, deleted_at)
                drop("deleted since")
                return
            if accepted is not None and accepted.cid != cid and is_newer(accepted.rev, rev):
                counts["dropped:superseded"] += 1
                logger.info(
                    "dropping %s at %s: the consumer has %s", playlist_uri, rev, accepted.rev
                )
                return
            seen = recommender.seen(version, held.along[BEFORE_RECOMPUTE_COMMANDS:])
            ensured = await recommender.ensure(
                version, lease=held, force=force, seen=seen, known_tracks=known_tracks
            )
        counts[f"recompute:{ensured.outcome.value}"] += 1
        if services.observer is not None:
            services.observer.recomputed(playlist_uri, cid, ensured)
        logger.info(
            "recompute %s cid=%s: %s in %.1f ms",
            playlist_uri,
            cid,
            ensured.outcome.value,
            ensured.seconds * 1e3,
        )


async def forget_playlist(
    playlist_uri: str,
    rev: str = "",
    retry: ExponentialRetry = BACKOFF,
    lease: float = Depends(lease_seconds),
    services: Services = Depends(current_services),
) -> None:
    """drop a deleted playlist's cached recommendations and state (the delete's `rev`
    keeps a late forget from erasing a re-created playlist's newer answers)."""
    counts = services.counts
    async with failure_policy(counts, "forget", playlist_uri):
        if rev:
            # first, and whatever is cached: a recompute of this record still
            # retrying (it may not even know its playlist yet) must find it
            await services.cache.mark_deleted(playlist_uri, rev)
        playlist_id = await services.cache.playlist_id_for(playlist_uri)
        if playlist_id is None:
            playlist = await services.catalog.resolve_playlist(playlist_uri)
            playlist_id = playlist.playlist_id if playlist is not None else None
        if playlist_id is None:
            counts["forget:unknown"] += 1
            return
        # the recompute's lock: taking it ends the lease of any run still writing
        async with playlist_lock(services.redis, playlist_id, lease_seconds=lease):
            state = await services.cache.get_state(playlist_id)
            if rev and state is not None and is_newer(state.rev, rev):
                counts["forget:superseded"] += 1
                logger.info("not forgetting %s: re-created since (rev %s)", playlist_uri, state.rev)
                return
            deleted = await services.cache.forget(playlist_id, playlist_uri=playlist_uri)
        counts["forget:done"] += 1
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
