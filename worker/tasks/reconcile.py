"""the reconcile loop: plyr.fm's database is the source of truth, the firehose the fast path.

- `reconcile_playlists`: a docket `Perpetual(automatic=True)`, so exactly one
  runs however many workers there are (docket keys it by its name). the first
  pass starts as soon as a worker finds none scheduled (a cold deploy); then
  one pass every `RECONCILE_INTERVAL_SECONDS`, counted from the start of the
  last. a pass that fails on a transient fault (Redis, PostgreSQL, docket) keeps
  its stored position and is tried again sooner, from there.
- `recompute_private_playlist(playlist_id, token, refresh)`: the path of a
  private playlist (no record, so no record URI for `recompute_playlist`): it
  reads the playlist's `items_json` when it runs, and caches under its current
  `updated_at` token, as the API would. one per playlist at a time (its docket key).
- `request_pass(docket)`: the hook for whoever learns that the firehose missed
  things (a blind host, a Redis that lost its data): the next pass starts now.

`missed_by_firehose` (healed versions) is counted per pass, kept across passes
(`worker.store.reconcile_state`), and shown by `/metrics` and `plyr-recs status`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from docket import CurrentDocket, Depends, Docket, ExponentialRetry, Perpetual, Timeout

from engine.errors import InvalidInputError
from jetstream.faults import FAULTS
from worker.identity.pds import PdsRecords
from worker.identity.pds_lists import PassRecords
from worker.recs.policy import BACKOFF, TASK_TIMEOUT, failure_policy, lease_seconds
from worker.recs.services import Services, current_services
from worker.recs.version import PlaylistVersion, rev_at, version_token
from worker.settings import Settings
from worker.store.activity import active_days_seconds
from worker.store.lock import playlist_lock
from worker.store.reconcile_state import PassSummary
from worker.tasks.batch import recompute_batch
from worker.tasks.playlist import recompute_playlist
from worker.tasks.reconcile_decide import Policy
from worker.tasks.reconcile_pass import PassConfig, PassTasks, Progress, run_pass
from worker.wiring import pds_client

logger = logging.getLogger(__name__)

RECONCILE_TASK: Final = "reconcile_playlists"
# after a pass failed on a transient fault: try again this soon (or at the interval)
FAILED_PASS_RETRY: Final = timedelta(seconds=30)
MAX_PLAYLIST_ID_LENGTH: Final = 200


def private_recompute_key(playlist_id: str) -> str:
    """the docket key of a private playlist's pending recompute (one per playlist)."""
    return f"recompute-private:{playlist_id}"


def pass_config(settings: Settings, *, run: str, dry_run: bool = False) -> PassConfig:
    interval = settings.reconcile_interval_seconds
    return PassConfig(
        run=run,
        page_size=settings.reconcile_page_size,
        max_per_second=settings.reconcile_max_per_second,
        policy=Policy(
            interval_seconds=interval,
            margin_seconds=settings.refresh_margin_seconds,
            active_seconds=settings.refresh_active_days * 86_400,
            heal_grace_seconds=settings.reconcile_heal_grace_seconds,
        ),
        active_ttl_seconds=active_days_seconds(settings.refresh_active_days),
        # a pass cut short resumes if the next one comes within a few intervals;
        # an older position is stale (the next pass starts over)
        position_ttl_seconds=int(max(3 * interval, 3600)),
        list_collection=settings.list_collection,
        dry_run=dry_run,
        batch_size=settings.reconcile_batch_size,
    )


@dataclass(frozen=True, slots=True)
class PassParts:
    pds: PdsRecords
    records: PassRecords


@asynccontextmanager
async def pass_parts(settings: Settings, pds: PdsRecords | None = None) -> AsyncIterator[PassParts]:
    """the PDS client of one pass (closed after it, unless handed in)."""
    client = pds or pds_client(settings)
    try:
        yield PassParts(
            client,
            PassRecords(
                client,
                per_host=settings.pds_max_in_flight_per_host,
                total=settings.pds_max_in_flight,
            ),
        )
    finally:
        if pds is None:
            await client.aclose()


async def reconcile_once(
    services: Services,
    docket: Docket,
    *,
    run: str,
    dry_run: bool = False,
    progress: Progress | None = None,
    resume: bool = True,
    pds: PdsRecords | None = None,
) -> PassSummary:
    """one pass now (the perpetual task's body, and `plyr-recs warm`)."""
    async with pass_parts(services.settings, pds) as parts:
        return await run_pass(
            redis=services.redis,
            catalog=services.catalog,
            docket=docket,
            records=parts.records,
            tasks=PassTasks(
                recompute_playlist,
                recompute_private_playlist,
                private_recompute_key,
                recompute_batch,
            ),
            config=pass_config(services.settings, run=run, dry_run=dry_run),
            progress=progress,
            resume=resume,
        )


async def reconcile_playlists(
    perpetual: Perpetual = Perpetual(automatic=True),
    docket: Docket = CurrentDocket(),
    services: Services = Depends(current_services),
) -> None:
    """one reconcile pass; the next is scheduled `RECONCILE_INTERVAL_SECONDS` after
    this one started (at once if this one took longer)."""
    interval = timedelta(seconds=services.settings.reconcile_interval_seconds)
    perpetual.after(interval)
    try:
        # the worker's one PDS client: what it learnt of failing hosts and refused
        # records outlives the pass (worker.identity.pds_failures)
        summary = await reconcile_once(services, docket, run="loop", pds=services.pds)
    except FAULTS.transient as error:
        # the position is stored: the retry carries on from the last page done
        services.counts["reconcile:failed_pass"] += 1
        logger.warning("reconcile pass stopped, resuming later: %s", error)
        perpetual.after(min(interval, FAILED_PASS_RETRY))
        return
    services.counts["reconcile:passes"] += 1
    services.counts["reconcile:missed_by_firehose"] += summary.counts.get(
        "enqueued:missed_by_firehose", 0
    )


async def request_pass(docket: Docket) -> None:
    """start the next reconcile pass now (e.g. the consumer found a host blind):
    it replaces the scheduled one; docket runs one at a time under the task's key."""
    await docket.replace(reconcile_playlists, when=datetime.now(UTC), key=RECONCILE_TASK)()


async def recompute_private_playlist(
    playlist_id: str,
    token: str,
    refresh: bool = False,
    retry: ExponentialRetry = BACKOFF,
    deadline: Timeout = Timeout(TASK_TIMEOUT),
    lease: float = Depends(lease_seconds),
    services: Services = Depends(current_services),
) -> None:
    """compute a private playlist's recommendations from its `items_json`, for its
    current version (which may be newer than the `token` the pass saw)."""
    counts = services.counts
    async with failure_policy(counts, "private recompute", playlist_id):
        if not isinstance(playlist_id, str) or not 0 < len(playlist_id) <= MAX_PLAYLIST_ID_LENGTH:
            raise InvalidInputError("bad playlist id")
        async with playlist_lock(services.redis, playlist_id, lease_seconds=lease) as held:
            playlist = await services.catalog.get_playlist(playlist_id)
            if playlist is None or not playlist.is_private:
                counts["dropped:not_private"] += 1  # deleted, or published since: not ours here
                return
            current = version_token(playlist)
            if current is None:
                counts["dropped:no_version"] += 1
                return
            version = PlaylistVersion(
                playlist_id,
                current,
                rev_at(playlist.updated_at),
                playlist.owner_did,
                tuple(playlist.items or ()),
            )
            ensured = await services.recommender.ensure(
                version, lease=held, force=refresh is True and current == token
            )
        counts[f"recompute:{ensured.outcome.value}"] += 1


# what `plyr-recs worker` registers besides the playlist tasks: the private path
# always (the pass enqueues it), the perpetual only where automatic tasks are
# scheduled (a test's drain of the queue would never finish with it there)
RECONCILE_TASKS: list[Callable[..., Awaitable[None]]] = [
    recompute_private_playlist,
    recompute_batch,
]
PERPETUAL_TASKS: list[Callable[..., Awaitable[None]]] = [reconcile_playlists]
