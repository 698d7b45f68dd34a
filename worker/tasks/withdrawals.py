"""the withdrawal tasks: nothing withdrawn is served for more than a few seconds.

- `check_withdrawals`, a docket Perpetual (automatic: one chain however many
  workers run, re-sown by docket if lost), every `WITHDRAWAL_CHECK_SECONDS`:
  one round (`check_round`) asks plyr.fm's database, in one statement, which
  tracks of the live answers are no longer surfaceable, marks them withdrawn,
  publishes the round's record (what makes the API trust the set) and enqueues
  a refill of every playlist whose answer carried one. the cost is the live
  answers' distinct tracks, never the catalogue.
- `withdraw_track(track_uri, did)`: a `fm.plyr.track` delete from the firehose.
  only the track's own repo can delete its record: the DID of the URI must be
  the repo's (`did`), anything else is ignored and counted. enqueue it with
  `withdrawal_handler(docket)`, the consumer's handler for track deletes.
- `refill_playlist(playlist_id)`: recompute the playlist's current version so
  its answer fills up again (the API already screens it meanwhile).

reinstatement needs no hurry (DESIGN.md): a round unmarks a track plyr.fm
surfaces again, and it returns with the next recompute of each playlist.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from docket import (
    CurrentDocket,
    Depends,
    Disposition,
    Docket,
    ExponentialRetry,
    Perpetual,
    Timeout,
)

from engine.eligibility import MAX_CHECKED_TRACK_IDS
from engine.errors import InvalidInputError, TransientError
from engine.withdrawal import RoundRecord, Source, decide
from jetstream.contract import withdraw_key
from jetstream.faults import FAULTS
from jetstream.syntax import DID, RKEY
from worker.recs.policy import BACKOFF, TASK_TIMEOUT, failure_policy, lease_seconds
from worker.recs.services import Services, current_services
from worker.recs.version import PlaylistVersion, rev_at
from worker.store.lock import playlist_lock
from worker.store.withdrawn import WithdrawalIndex

logger = logging.getLogger(__name__)

CHECK_EVERY: Final = timedelta(seconds=1)  # the default; WITHDRAWAL_CHECK_SECONDS sets it
ENQUEUE_CONCURRENCY: Final = 32  # refills enqueued at once (one docket script each)
MAX_TRACK_URI_LENGTH: Final = 8192
FAILURE_LOG_EVERY: Final = 60  # rounds: a database outage logs once a minute, not per second
TRACK_URI_RE: Final = re.compile(rf"at://(?P<did>{DID})/(?P<collection>[^/]+)/{RKEY}")

TRANSIENT = FAULTS.transient
PERMANENT = FAULTS.permanent


def refill_key(playlist_id: str) -> str:
    """one pending refill per playlist, however many of its tracks were withdrawn."""
    return f"refill:{playlist_id}"


@dataclass(frozen=True, slots=True)
class RoundReport:
    checked: int
    withdrawn: frozenset[int]
    reinstated: frozenset[int]
    refills: int
    seconds: float  # up to the record being published (the refills are enqueued after)


async def check_round(services: Services, docket: Docket) -> RoundReport:
    """one withdrawal check; raises the catalog's or Redis' faults (nothing is published)."""
    index = WithdrawalIndex(services.redis, ttl_seconds=services.settings.cache_ttl_seconds)
    started_at = time.time()
    started = time.perf_counter()
    live, withdrawn, firehose = await index.round_inputs()
    # the marked ones too: a round's marks are lifted when plyr.fm surfaces them again
    to_check = sorted(live | (withdrawn - firehose))
    eligible: set[int] = set()
    for start in range(0, len(to_check), MAX_CHECKED_TRACK_IDS):
        eligible |= await services.catalog.eligible_ids(
            to_check[start : start + MAX_CHECKED_TRACK_IDS]
        )
    decision = decide(live=live, eligible=eligible, withdrawn=withdrawn, firehose=firehose)
    evicted = await index.mark(decision.withdrawn, Source.CATALOG)
    await index.unmark(decision.reinstated)
    carriers = await index.carriers(decision.withdrawn)
    totals = await index.count(
        {
            "rounds": 1,
            f"withdrawn:{Source.CATALOG}": len(decision.withdrawn),
            "reinstated": len(decision.reinstated),
            "evicted": evicted,
            "refills": len(carriers),
        }
    )
    seconds = time.perf_counter() - started
    size = len(withdrawn) + len(decision.withdrawn) - len(decision.reinstated)
    await index.publish(RoundRecord(started_at, seconds, len(to_check), size, totals))
    if decision.withdrawn:
        logger.info(
            "withdrawn: %d tracks (%s), %d playlists to refill",
            len(decision.withdrawn),
            ", ".join(map(str, sorted(decision.withdrawn)[:10])),
            len(carriers),
        )
    await enqueue_refills(docket, carriers)
    return RoundReport(
        len(to_check), decision.withdrawn, decision.reinstated, len(carriers), seconds
    )


async def enqueue_refills(docket: Docket, playlist_ids: Iterable[str]) -> None:
    pending = sorted(playlist_ids)
    for start in range(0, len(pending), ENQUEUE_CONCURRENCY):
        await asyncio.gather(
            *(
                docket.add(refill_playlist, key=refill_key(playlist_id))(playlist_id)
                for playlist_id in pending[start : start + ENQUEUE_CONCURRENCY]
            )
        )


async def check_withdrawals(
    perpetual: Perpetual = Perpetual(every=CHECK_EVERY, automatic=True),
    docket: Docket = CurrentDocket(),
    services: Services = Depends(current_services),
) -> None:
    """the check round, perpetually (docket keeps one chain of it per docket)."""
    started = time.perf_counter()
    counts = services.counts
    try:
        report = await check_round(services, docket)
    except (*TRANSIENT, *PERMANENT) as error:
        # plyr.fm's database or Redis is down: nothing is published, so the API stops
        # trusting the set within WITHDRAWAL_STALE_SECONDS and checks hits itself
        counts["withdrawal_round:failed"] += 1
        streak = counts["withdrawal_round:failed_streak"] = (
            counts["withdrawal_round:failed_streak"] + 1
        )
        if streak % FAILURE_LOG_EVERY == 1:
            logger.warning("withdrawal check failed (%d in a row): %s", streak, error)
    else:
        counts["withdrawal_round:done"] += 1
        counts["withdrawal_round:failed_streak"] = 0
        counts["withdrawn:catalog"] += len(report.withdrawn)
        counts["withdrawal_refills_enqueued"] += report.refills
    elapsed = time.perf_counter() - started
    interval = services.settings.withdrawal_check_seconds
    perpetual.after(timedelta(seconds=max(0.0, interval - elapsed)))


def track_owner(track_uri: str, collection: str) -> str | None:
    """the repo DID of a track record URI, or None if it is not one."""
    if not isinstance(track_uri, str) or len(track_uri) > MAX_TRACK_URI_LENGTH:
        return None
    match = TRACK_URI_RE.fullmatch(track_uri)
    if match is None or match["collection"] != collection:
        return None
    return match["did"]


async def withdraw_track(
    track_uri: str,
    did: str,
    retry: ExponentialRetry = BACKOFF,
    deadline: Timeout = Timeout(TASK_TIMEOUT),
    docket: Docket = CurrentDocket(),
    services: Services = Depends(current_services),
) -> None:
    """a `fm.plyr.track` record deleted in repo `did`: withdraw the track it names."""
    counts = services.counts
    async with failure_policy(counts, "withdrawal", track_uri):
        owner = track_owner(track_uri, services.settings.track_collection)
        if owner is None:
            raise InvalidInputError(f"not a track record URI: {track_uri!r:.120}")
        if owner != did:
            # a repo can only delete its own records; a frame claiming otherwise is forged
            counts["withdraw:foreign_repo"] += 1
            logger.info("ignoring a delete of %s from another repo (%s)", track_uri, did)
            return
        known = await services.catalog.resolve_tracks([track_uri])
        track_id = known.get(track_uri)
        if track_id is None:
            # plyr.fm has no row (any more): a live answer carrying it is the round's
            # to find (its row is gone)
            counts["withdraw:unknown_track"] += 1
            return
        index = WithdrawalIndex(services.redis, ttl_seconds=services.settings.cache_ttl_seconds)
        if track_id in await index.withdrawn_among([track_id]):
            counts["withdraw:already"] += 1
        evicted = await index.mark([track_id], Source.FIREHOSE)
        carriers = await index.carriers([track_id])
        await index.count(
            {f"withdrawn:{Source.FIREHOSE}": 1, "evicted": evicted, "refills": len(carriers)}
        )
        await enqueue_refills(docket, carriers)
        counts["withdrawn:firehose"] += 1
        logger.info(
            "withdrawn %s (track %d): %d playlists to refill", track_uri, track_id, len(carriers)
        )


async def refill_playlist(
    playlist_id: str,
    retry: ExponentialRetry = BACKOFF,
    deadline: Timeout = Timeout(TASK_TIMEOUT),
    lease: float = Depends(lease_seconds),
    services: Services = Depends(current_services),
) -> None:
    """recompute the current version of a playlist whose answer carried a withdrawn track.

    the version is the one the worker's state names, recomputed through the one path
    (the playlist's lock, the fenced write, the newest-revision rule: a newer edit's
    state written meanwhile stays). nothing is done when that version's answer
    carries no withdrawn track any more (recomputed since, or expired).
    """
    counts = services.counts
    cache = services.cache
    async with failure_policy(counts, "refill", playlist_id):
        if not isinstance(playlist_id, str) or not 0 < len(playlist_id) <= 64:
            raise InvalidInputError("not a playlist id")
        async with playlist_lock(services.redis, playlist_id, lease_seconds=lease) as held:
            state = await cache.get_state(playlist_id)
            entry = None if state is None else await cache.get(playlist_id, state.token)
            if state is None or entry is None or services.recommender.store is None:
                counts["refill:gone"] += 1
                return
            index = WithdrawalIndex(services.redis, ttl_seconds=services.settings.cache_ttl_seconds)
            if not await index.withdrawn_among(entry.ids()):
                counts["refill:not_needed"] += 1
                return
            version = PlaylistVersion(
                playlist_id,
                state.token,
                # a state from before revs were required: the oldest rev, never newer
                state.rev or rev_at(datetime.fromtimestamp(0, UTC)),
                state.owner_did,
                tuple(state.track_uris),
            )
            await services.recommender.ensure(version, lease=held, force=True)
        counts["refill:done"] += 1


# a batch of (track_uri, repo_did, when: unix seconds)
TrackDeleteHandler = Callable[[Sequence[tuple[str, str, float]]], Awaitable[None]]


def withdrawal_handler(docket: Docket) -> TrackDeleteHandler:
    """what the consumer calls for a batch of `fm.plyr.track` deletes: each enqueues
    `withdraw_track` at its `when` (a redelivered delete is one task: keyed by the
    URI), the batch in one pipeline; a schedule that failed raises, so the consumer
    replays the batch."""

    async def on_track_deletes(deletes: Sequence[tuple[str, str, float]]) -> None:
        calls = [
            docket.call(withdraw_track, datetime.fromtimestamp(when, UTC), withdraw_key(uri))(
                uri, did
            )
            for uri, did, when in deletes
        ]
        for execution in await docket.add_many(calls):
            if execution.disposition is Disposition.FAILED:
                raise TransientError(
                    f"docket refused {execution.key}: {execution.schedule_exception!r}"
                ) from execution.schedule_exception

    return on_track_deletes


WITHDRAWAL_TASKS: Final = (check_withdrawals, withdraw_track, refill_playlist)
