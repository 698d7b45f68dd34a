"""one reconcile pass: plyr.fm's playlists against the cache, page by page.

for each page (keyset pagination over `playlists.id`, `RECONCILE_PAGE_SIZE`
rows): one pipelined Redis read of every playlist's probe (the entry of its
current version, its activity, its lapse marker, the consumer's last accepted
CID), the decisions (`worker.tasks.reconcile_decide`), the due public
playlists' list records from their owners' PDSes (`worker.identity.pds_lists`),
then one `add_many` of the recomputes. the public ones go `RECONCILE_BATCH_SIZE`
to a task (`recompute_batch`, `worker.tasks.batch`: docket's cost per task paid
once for several; how a batch keeps a pending edit's newer version is said
there); at a batch size of 1, each is the consumer's own task under its docket key
(`recompute_playlist`, `recompute_key(uri)`), so a pending edit of the playlist is
never overwritten by the pass (`add` keeps what is there) and an edit arriving
after replaces what the pass enqueued. private playlists (no record) get
`recompute_private_playlist`, which reads `items_json` when it runs.

a warm playlist costs its share of one pipelined read per page and nothing else.
the pass's position (and its counts so far) is stored after every page, so a
pass cut short (a worker restarted, Redis or PostgreSQL failing) resumes where
it was. enqueues are paced to `RECONCILE_MAX_PER_SECOND`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from docket import Disposition, Docket, TaskCall

from engine.errors import TransientError
from engine.types import PlaylistRow
from jetstream.contract import recompute_key
from jetstream.keys import JetstreamKeys
from worker.identity.pds_lists import (
    DELETED,
    PassRecords,
    RecordMissing,
    RecordResult,
    WantedRecord,
)
from worker.recs.version import database_rev, version_token
from worker.store.reconcile_probe import (
    Probe,
    Wanted,
    mark_active,
    mark_gone,
    mark_lapsing,
    probe,
)
from worker.store.reconcile_state import PassSummary, ReconcileState
from worker.tasks.reconcile_decide import (
    Action,
    Policy,
    Reason,
    Verdict,
    decide,
    firehose_horizon,
)

logger = logging.getLogger(__name__)

MISSED: Final = "enqueued:missed_by_firehose"
MAX_CHUNK: Final = 50  # due playlists whose records are read and enqueued together


class ReconcileEnqueueFailed(TransientError):
    """docket did not take a recompute: the pass stops here and resumes later."""


@dataclass(frozen=True, slots=True)
class PassConfig:
    run: str  # "loop" (the workers') or "warm" (the command): each has its own position
    page_size: int
    max_per_second: float
    policy: Policy
    active_ttl_seconds: int  # how long a healed edit counts as activity
    position_ttl_seconds: int
    list_collection: str
    dry_run: bool = False
    # due public playlists per enqueued task (`worker.tasks.batch`); 1: one
    # `recompute_playlist` each, under its playlist's key
    batch_size: int = 1


@dataclass(frozen=True, slots=True)
class PassTasks:
    """the task functions the pass enqueues (handed in: this module does not import
    the tasks, which import it)."""

    recompute: Callable[..., Any]
    recompute_private: Callable[..., Any]
    private_key: Callable[[str], str]
    recompute_batch: Callable[..., Any]  # RECONCILE_BATCH_SIZE public playlists a task


Progress = Callable[[PassSummary], None]


class Pacer:
    """at most `rate` items per second, in bursts of a chunk."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._allowed_at = time.monotonic()

    async def take(self, items: int) -> None:
        now = time.monotonic()
        start = max(self._allowed_at, now)
        self._allowed_at = start + items / self.rate
        if start > now:
            await asyncio.sleep(start - now)


async def run_pass(
    *,
    redis: Any,
    catalog: Any,
    docket: Docket,
    records: PassRecords,
    tasks: PassTasks,
    config: PassConfig,
    progress: Progress | None = None,
    resume: bool = True,
) -> PassSummary:
    """walk every playlist once (from the stored position when `resume`); the summary."""
    state = ReconcileState(redis, run=config.run, position_ttl_seconds=config.position_ttl_seconds)
    summary = await state.resume() if resume and not config.dry_run else None
    if summary is None:
        summary = PassSummary(run=config.run, started_at=time.time())
    else:
        summary.resumed = True
    previous = await _previous_pass_started(redis, config)
    keys = JetstreamKeys(config.list_collection)
    summary.total_estimate = await catalog.count_playlists()
    pacer = Pacer(config.max_per_second)
    while True:
        rows: list[PlaylistRow] = await catalog.list_playlists(
            after=summary.after, limit=config.page_size
        )
        if not rows:
            break
        now = datetime.now(UTC)
        horizon = firehose_horizon(now, grace_seconds=config.policy.heal_grace_seconds)
        probes = await _probe(redis, keys, rows)
        verdicts = [
            decide(
                row,
                probe,
                now=now,
                policy=config.policy,
                previous_pass_started=previous,
                firehose_horizon=horizon,
            )
            for row, probe in zip(rows, probes, strict=True)
        ]
        missed_before = summary.counts[MISSED]
        # the consumer's accepted (rev, CID) per playlist: the rev of the version a
        # recompute is enqueued for, when it is the very version plyr.fm names
        accepted = {
            row.playlist_id: (probe.firehose_rev, probe.firehose_cid)
            for row, probe in zip(rows, probes, strict=True)
            if probe.firehose_rev is not None
        }
        await _act(redis, docket, records, tasks, config, rows, verdicts, summary, pacer, accepted)
        if not config.dry_run and summary.counts[MISSED] > missed_before:
            # counted as found, not when the pass ends: the signal is live on /metrics
            await state.count_missed(summary.counts[MISSED] - missed_before)
        summary.listed += len(rows)
        summary.after = rows[-1].playlist_id
        if not config.dry_run:
            await state.save_position(summary)
        if progress is not None:
            progress(summary)
        if len(rows) < config.page_size:
            break
    summary.finished_at = time.time()
    if not config.dry_run:
        await state.finish(summary)
    logger.info(
        "reconcile pass (%s) over %d playlists in %.1fs: %s",
        config.run,
        summary.listed,
        summary.seconds or 0.0,
        dict(sorted(summary.counts.items())),
    )
    return summary


async def _act(
    redis: Any,
    docket: Docket,
    records: PassRecords,
    tasks: PassTasks,
    config: PassConfig,
    rows: Sequence[PlaylistRow],
    verdicts: Sequence[Verdict],
    summary: PassSummary,
    pacer: Pacer,
    accepted: Mapping[str, tuple[str, str | None]],
) -> None:
    due: list[tuple[PlaylistRow, Verdict]] = []
    lapsing: list[tuple[str, str]] = []
    for row, verdict in zip(rows, verdicts, strict=True):
        if verdict.action is Action.SKIP:
            summary.counts[verdict.reason.value] += 1
            if verdict.reason is Reason.LAPSING and verdict.token is not None:
                lapsing.append((row.playlist_id, verdict.token))
        else:
            due.append((row, verdict))
    if lapsing and not config.dry_run:
        await mark_lapsing(redis, lapsing, ttl_seconds=config.active_ttl_seconds)
    # the page's records are read together (bounded per PDS host, not by the pace:
    # one slow host must not hold the others' reads back), then enqueued at the pace
    wanted = [
        WantedRecord(row.record_uri, row.owner_pds_url, row.owner_did)
        for row, _ in due
        if not row.is_private and row.record_uri and row.owner_pds_url
    ]
    fetched = await records.read(wanted) if wanted and not config.dry_run else {}
    chunk = max(1, min(MAX_CHUNK, int(config.max_per_second)))
    for start in range(0, len(due), chunk):
        part = due[start : start + chunk]
        await pacer.take(len(part))
        await _enqueue_chunk(redis, docket, fetched, tasks, config, part, summary, accepted)


async def _enqueue_chunk(
    redis: Any,
    docket: Docket,
    fetched: Mapping[str, RecordResult],
    tasks: PassTasks,
    config: PassConfig,
    due: Sequence[tuple[PlaylistRow, Verdict]],
    summary: PassSummary,
    accepted: Mapping[str, tuple[str, str | None]],
) -> None:
    calls: list[TaskCall] = []
    reasons: list[list[str]] = []  # each call's items' reasons (a batch has several)
    batched: list[tuple[list[Any], str]] = []  # public items' arguments, when batching
    healed: list[str] = []
    gone: list[tuple[str, str]] = []
    now = datetime.now(UTC)
    for row, verdict in due:
        refresh = verdict.action is Action.REFRESH
        if row.is_private or not row.record_uri:
            if not row.is_private:
                # a public playlist plyr.fm holds no record for: no tracks to read
                summary.counts["failed:no_record"] += 1
                continue
            calls.append(
                docket.call(tasks.recompute_private, now, tasks.private_key(row.playlist_id))(
                    row.playlist_id, verdict.token, refresh=refresh
                )
            )
            reasons.append(["private"])
            continue
        if row.owner_pds_url is None:
            summary.counts["failed:no_pds"] += 1
            continue
        if config.dry_run:
            reasons.append([verdict.reason.value])
            continue
        result = fetched.get(row.record_uri, RecordMissing("unread"))
        if isinstance(result, RecordMissing):
            if result.reason == DELETED:
                summary.counts["deleted"] += 1
                if verdict.token is not None:
                    gone.append((row.playlist_id, verdict.token))  # not read again
            else:
                summary.counts[f"failed:{result.reason}"] += 1
            continue
        # the version is the one plyr.fm's database names, never the PDS's word: a PDS
        # naming another CID (plyr.fm's ingest lags, or a PDS that makes one up on
        # every read) is counted and left to the next pass, not cached under its CID
        token = verdict.token
        if token is None or (row.record_cid and result.cid and result.cid != row.record_cid):
            summary.counts["failed:pds_other_version"] += 1
            continue
        rev = database_rev(row, accepted.get(row.playlist_id))
        arguments = (row.record_uri, token, rev, list(result.track_uris))
        if config.batch_size > 1:
            batched.append(([*arguments, refresh], verdict.reason.value))
        else:
            calls.append(
                docket.call(tasks.recompute, now, recompute_key(row.record_uri))(
                    *arguments, refresh=refresh
                )
            )
            reasons.append([verdict.reason.value])
        if verdict.reason is Reason.MISSED_BY_FIREHOSE:
            healed.append(row.playlist_id)
    if config.dry_run:
        for would in reasons:
            summary.counts[f"enqueued:{would[0]}"] += 1
        return
    for start in range(0, len(batched), config.batch_size):
        part = batched[start : start + config.batch_size]
        # no key: docket gives each batch its own (`worker.tasks.batch` says what a
        # playlist's key gave and how a batch does without)
        calls.append(docket.call(tasks.recompute_batch, now)([args for args, _ in part]))
        reasons.append([reason for _, reason in part])
    if gone:
        await mark_gone(redis, gone)
    if calls:
        executions = await docket.add_many(calls)
        for execution, call_reasons in zip(executions, reasons, strict=True):
            if execution.disposition is Disposition.FAILED:
                raise ReconcileEnqueueFailed(
                    f"docket refused {execution.key}: {execution.schedule_exception!r}"
                ) from execution.schedule_exception
            for reason in call_reasons:
                if execution.disposition is Disposition.ALREADY_SCHEDULED:
                    summary.counts["pending"] += 1  # an edit (or an earlier pass) has it queued
                elif execution.disposition is Disposition.STRUCK:
                    summary.counts["struck"] += 1
                else:
                    summary.counts[f"enqueued:{reason}"] += 1
    if healed:
        # a missed edit is an edit: the playlist is active as if the firehose had said so
        await mark_active(redis, healed, ttl_seconds=config.active_ttl_seconds)


async def _probe(
    redis: Any,
    keys: JetstreamKeys,
    rows: Sequence[PlaylistRow],
) -> list[Probe]:
    """every row's probe in one pipelined round trip (`worker.store.reconcile_probe`)."""
    wanted = [Wanted(row.playlist_id, version_token(row), row.record_uri) for row in rows]
    return await probe(redis, keys, wanted)


async def _previous_pass_started(redis: Any, config: PassConfig) -> datetime | None:
    """when the newest finished pass (of either run) started: versions older than that
    were seen by it."""
    starts = []
    for run in ("loop", "warm"):
        last = await ReconcileState(redis, run=run, position_ttl_seconds=1).last()
        if last is not None:
            starts.append(last.started_at)
    return datetime.fromtimestamp(max(starts), UTC) if starts else None
