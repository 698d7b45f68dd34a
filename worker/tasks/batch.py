"""several due playlists' recomputes in one docket task: the reconcile loop's bulk.

a cold deploy, a lost Redis and refresh-ahead are thousands of recomputes that
nobody is waiting on, all enqueued by the reconcile pass. docket costs about a
millisecond of the worker's CPU per task (its claim and completion scripts, the
strike check, the dependencies: `python -m bench floor`), as much as the engine's
own maths; one task per `RECONCILE_BATCH_SIZE` playlists pays it once for them all.

the items run side by side, each exactly as `recompute_playlist` runs one
(`recompute_version`: its checks, its lock and lease, the one path). their
turbopuffer searches wait at the batch's gate (`engine.query_gate`) until every run
still going waits there too, then go out together: a batch of eight playlists'
searches is one or two multi-query requests instead of eight (11 searches a batch in
`bench scale`'s world: mostly one), sent one after another under one slot of the
shared budget, so a batch has at most one request of its searches in flight, as one
task has. the runs that request answers resume in one turn, and their hydrates go to
PostgreSQL as one statement (`engine.coalescing_catalog`). (one slot held by the
batch through all its runs, tried before, held it through every run's database and
Redis steps too: at 4 workers a quarter of the batches' lookups and 1,209 of 19,500
runs found no slot within their second, `bench scale --playlists 20000`; the gate
holds its slot only while its requests are in flight.) the batch's shared requests
wait for their slot up to PATIENT_WAIT_SECONDS
(`worker.store.store_budget.patient`), not a single run's second: a refusal would
hand all their runs off, to be done again. before they run, the batch reads what the
runs would each read alone: every item's playlist and tracks from PostgreSQL at
once, and their embeddings in one id lookup into the vector cache
(`VECTOR_CACHE_SIZE`), where each run finds its own (`python -m bench scale`).

what a batch does not have is a docket key per playlist; what that key gave, the
item gets otherwise:

- an edit of the playlist queued or arriving meanwhile (the consumer's task under
  `recompute_key`) is not overwritten and does not overwrite: both run, under the
  playlist's lock, and the older version is dropped there (the consumer's accepted
  version is newer: `dropped:superseded`) or finds its entry cached;
- an item that would be retried (a transient fault, the playlist busy, a lease
  lost, its time up, plyr.fm not knowing the playlist yet) is handed off: enqueued
  as its own `recompute_playlist` under its key, after the first backoff, with the
  whole retry schedule of its own. `add` keeps an edit already queued there.
  the other items go on; nothing is retried twice. a shared search request that
  fails fails every run whose searches it carried: each is handed off;
- an item's arguments are checked as the task's are: a bad one is dropped and
  counted, the others run;
- a batch cut short (a worker killed, its deadline) is redelivered or retried
  whole by docket: the items already done find their entries cached.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

from docket import CurrentDocket, Depends, Disposition, Docket, ExponentialRetry, Timeout
from docket.dependencies import ForcedRetry

from engine.query_gate import QueryGate
from engine.vector_cache import VectorCache
from jetstream.contract import recompute_key
from worker.recs.policy import BACKOFF, RETRY_MIN_DELAY, TASK_TIMEOUT, lease_seconds
from worker.recs.services import Services, current_services
from worker.settings.reconcile import MAX_BATCH_ITEMS
from worker.store.store_budget import patient
from worker.tasks.playlist import (
    Resolved,
    check_arguments,
    recompute_playlist,
    recompute_version,
    resolve,
)

logger = logging.getLogger(__name__)

ITEM_TIMEOUT_SECONDS: Final = TASK_TIMEOUT.total_seconds()
# the most track ids a batch looks up ahead of its runs (turbopuffer's adapter asks
# 500 a request: 4 requests)
READ_AHEAD_MAX_IDS: Final = 2_000
# the read-ahead, the items' own timeout (they run side by side) and the time to
# hand off what is left fit in it
BATCH_TIMEOUT: Final = TASK_TIMEOUT * 2


class BatchItem(NamedTuple):
    """one playlist version to recompute: `recompute_playlist`'s arguments."""

    playlist_uri: str
    cid: str
    rev: str
    track_uris: list[str]
    refresh: bool = False


class _HandOff(ForcedRetry):
    """plyr.fm does not know the playlist yet: its own task waits for the ingest (an
    expected wait, as `retry.after` is: the failure policy lets it by uncounted)."""


async def recompute_batch(
    items: list[Any],
    retry: ExponentialRetry = BACKOFF,
    deadline: Timeout = Timeout(BATCH_TIMEOUT),
    lease: float = Depends(lease_seconds),
    docket: Docket = CurrentDocket(),
    services: Services = Depends(current_services),
) -> None:
    """recompute (or reuse) each item's version, side by side, their searches sent
    together (`items`: each a `BatchItem`, or its fields as a list); an item that
    would be retried is handed off to a `recompute_playlist` task of its own."""
    counts = services.counts
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH_ITEMS:
        counts["dropped:bad_batch"] += 1
        logger.error("dropping a recompute batch: not a list of 1..%d items", MAX_BATCH_ITEMS)
        return
    checked: list[BatchItem] = []
    for raw in items:
        item = _item(raw)
        if item is None:
            counts["dropped:bad_batch_item"] += 1
            logger.error("dropping a recompute batch's item: not a BatchItem: %.120r", raw)
            continue
        checked.append(item)
    if not checked:
        return
    resolved = await _read_ahead(services, checked)
    gate = QueryGate(len(checked))

    async def run(item: BatchItem) -> None:
        try:
            with gate.taking_part():
                async with asyncio.timeout(ITEM_TIMEOUT_SECONDS):
                    await recompute_version(
                        services,
                        item.playlist_uri,
                        item.cid,
                        item.rev,
                        item.track_uris,
                        refresh=item.refresh,
                        lease=lease,
                        unknown=_wait_for_ingest,
                        resolved=resolved.get(item.playlist_uri),
                    )
        except Exception as error:  # a fault was counted by the failure policy
            await _hand_off(docket, services, item, error)

    await asyncio.gather(*map(run, checked))
    counts["batch:gated_searches"] += gate.stats.searches
    counts["batch:gate_releases"] += gate.stats.releases


async def _read_ahead(services: Services, items: list[BatchItem]) -> dict[str, Resolved]:
    """every item's playlist and tracks, read at once, and their embeddings asked of
    turbopuffer in one id lookup into the vector cache, where each run finds them
    (one request for the batch where each run made its own). what cannot be read
    here is left to the item's own run, which reads it again and meets the fault."""

    async def one(item: BatchItem) -> tuple[str, Resolved] | None:
        try:
            check_arguments(item.playlist_uri, item.cid, item.rev, item.track_uris)
            return item.playlist_uri, await resolve(services, item.playlist_uri, item.track_uris)
        except Exception:  # a bad item, or the database failing: the run says so
            return None

    read = [pair for pair in await asyncio.gather(*map(one, items)) if pair is not None]
    store = services.store
    if isinstance(store, VectorCache) and store.max_vectors > 0:
        ids = list(dict.fromkeys(i for _, (_, known) in read for i in known.values()))
        # at most half the cache: what the batch fetches must not push out itself
        wanted = ids[: min(READ_AHEAD_MAX_IDS, store.max_vectors // 2)]
        if wanted:
            services.counts["batch:read_ahead"] += 1
            try:
                with patient():  # several runs' lookups: worth a wait for a slot
                    await store.get_vectors(wanted)
            except Exception as error:  # each run asks for its own, and meets the fault
                services.counts["batch:read_ahead_failed"] += 1
                logger.info("a batch's id lookup failed; its runs look up their own: %s", error)
    return dict(read)


def _wait_for_ingest() -> None:
    raise _HandOff


def _item(raw: Any) -> BatchItem | None:
    """the item, if it has BatchItem's shape (its values are checked as the task's); a
    BatchItem is a tuple of that shape too."""
    if isinstance(raw, (list, tuple)) and len(raw) == len(BatchItem._fields):
        return BatchItem(*raw)
    return None


async def _hand_off(docket: Docket, services: Services, item: BatchItem, error: Exception) -> None:
    """enqueue the item as its own task, under its playlist's key (an edit queued there
    is kept: it is the newer version, or the same)."""
    reason = "unknown_playlist" if isinstance(error, _HandOff) else type(error).__name__
    services.counts["batch:handed_off"] += 1
    logger.info("handing %s off to a task of its own: %s", item.playlist_uri, reason)
    when = datetime.now(UTC) + RETRY_MIN_DELAY
    execution = await docket.add(
        recompute_playlist, when=when, key=recompute_key(item.playlist_uri)
    )(item.playlist_uri, item.cid, item.rev, item.track_uris, refresh=item.refresh)
    if execution.disposition is Disposition.ALREADY_SCHEDULED:
        # an edit's task is queued or running under the key: it covers the playlist
        # (a version older than this one is healed by the next pass, as at batch size 1)
        services.counts["batch:handed_off_pending"] += 1
    elif execution.disposition is Disposition.STRUCK:
        services.counts["batch:handed_off_struck"] += 1
