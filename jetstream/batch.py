"""one batch of frames, start to finish: decode, guard, enqueue, then move the cursor.

a batch is whatever frames had already arrived when the previous batch finished
(up to a bound), handled strictly in arrival order. batching changes no
semantics, it only shares round trips: one MGET for the guard, one pipeline of
replaces, one pipeline of guard writes. the cursor moves past the batch only
after all of that succeeded; if anything fails, nothing of the batch counts as
done and the consumer replays it from the cursor.

markers (`TrackDelete`, `RepoResync`) go to the injected `MarkerSink` in the
same batch, before the cursor moves: a sink that raises leaves the batch
undone, and the replay hands the markers over again, so a sink must be
idempotent (the default one only counts).

a track delete passes the same per-DID flood control as a list change
(`jetstream.flood`, keyed by the track's URI): it gets the time its withdrawal may
run, paced past the DID's burst, or is shed past its cap (counted
`skipped:flood_shed`; the withdrawal check round still finds the track once
plyr.fm drops its row). before, 5,000 deletes from one account were 5,000
withdrawals due at once, ahead of everyone's recomputes (issue 23).

before a batch with something to admit, the flood control's bytes of tasks
docket no longer keeps are released (`jetstream.task_records`; the first batch
also finds what a previous consumer left), so the byte bound holds until tasks
finish, not until they fall due.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from jetstream.contract import withdraw_key
from jetstream.cursor import Cursor
from jetstream.enqueue import Enqueued, TaskSink
from jetstream.events import (
    Event,
    ListChange,
    ListCommit,
    ListDelete,
    RepoResync,
    Skipped,
    SkipReason,
    TrackDelete,
)
from jetstream.flood import FloodControl, task_bytes
from jetstream.frames import FrameLimits, decode_frame
from jetstream.guard import GuardState, RevGuard, judge
from jetstream.stats import ConsumerStats
from jetstream.task_records import TaskRecords

Observer = Callable[[Enqueued], None]
FrameDecoder = Callable[[bytes | str], Event]

# skips that still prove the host delivers plyr.fm's commits (`jetstream.blind`).
_PLYR_SKIPS = frozenset({SkipReason.PLYR_ACTIVITY, SkipReason.ALBUM, SkipReason.LIKED})


@dataclass(frozen=True, slots=True)
class DueDelete:
    """a track delete and when (unix seconds) its withdrawal may run: the flood
    control's answer, now for a DID within its pace."""

    delete: TrackDelete
    when: float


class MarkerSink(Protocol):
    """where markers go (the withdrawal and reconcile work lives elsewhere). called
    once per batch with that batch's markers, in order; must be idempotent."""

    async def track_deleted(self, deletes: Sequence[DueDelete]) -> None: ...

    async def repo_resynced(self, resyncs: Sequence[RepoResync]) -> None: ...


class CountingMarkers:
    """the default sink: the consumer's counters are all it does."""

    async def track_deleted(self, deletes: Sequence[DueDelete]) -> None:
        return None

    async def repo_resynced(self, resyncs: Sequence[RepoResync]) -> None:
        return None


@dataclass(frozen=True, slots=True)
class BatchPositions:
    """where a handled batch reached in the stream: its newest `time_us`, its newest
    v2 `seq`, and the stream position (running newest `time_us`) at its last
    plyr.fm commit, None when it held none."""

    newest_time_us: int | None
    newest_seq: int | None
    plyr_time_us: int | None


# how far ahead of our clock a frame's time_us may be and still move the cursor.
# a Jetstream host stamps time_us from its own clock; two NTP-kept clocks agree
# within well under a second, so 5 s is generous. a frame dated later is still
# handled (its change is real), but its time never becomes the cursor: resuming
# from a cursor in the future would skip every edit made until then.
FUTURE_SKEW_SECONDS = 5.0


class BatchProcessor:
    """the consumer's work, without the connection: frames in, tasks and a cursor out."""

    def __init__(
        self,
        *,
        limits: FrameLimits,
        guard: RevGuard,
        enqueuer: TaskSink,
        cursor: Cursor,
        stats: ConsumerStats,
        observer: Observer | None = None,
        clock: Callable[[], float] = time.time,
        markers: MarkerSink | None = None,
        flood: FloodControl | None = None,
        records: TaskRecords | None = None,
    ) -> None:
        self._markers = markers or CountingMarkers()
        self._flood = flood  # the enqueuer's, so a DID's deletes and edits share one pace
        self._records = records  # releases the flood's bytes of tasks docket no longer keeps
        self._limits = limits
        self._guard = guard
        self._enqueuer = enqueuer
        self._cursor = cursor
        self._stats = stats
        self._observer = observer
        self._clock = clock

    async def process(
        self, frames: Sequence[bytes | str], decode: FrameDecoder | None = None
    ) -> BatchPositions:
        """handle `frames` in order (decoded by `decode`, the v1 decoder unless
        told); raises on a Redis/docket/marker-sink fault, leaving the cursor
        where it was."""
        limits = self._limits
        decode_one = decode or (lambda frame: decode_frame(frame, limits))
        counts = ConsumerStats()
        counts.frames = len(frames)
        changes: list[ListChange] = []
        deletes: list[TrackDelete] = []
        resyncs: list[RepoResync] = []
        newest_time_us: int | None = None
        newest_seq: int | None = None
        plyr_time_us: int | None = None
        ceiling = int((self._clock() + FUTURE_SKEW_SECONDS) * 1_000_000)
        for frame in frames:
            event = decode_one(frame)
            plyr = True
            if isinstance(event, ListCommit | ListDelete):
                changes.append(event)
            elif isinstance(event, TrackDelete):
                deletes.append(event)
            elif isinstance(event, RepoResync):
                resyncs.append(event)
                plyr = False
            elif isinstance(event, Skipped):
                counts.skipped[event.reason] += 1
                plyr = event.reason in _PLYR_SKIPS
            else:
                counts.invalid[event.reason] += 1
                plyr = False
            if event.time_us is not None and event.time_us > ceiling:
                counts.future_frames += 1
            elif event.time_us is not None and (
                newest_time_us is None or event.time_us > newest_time_us
            ):
                newest_time_us = event.time_us
            if event.seq is not None and (newest_seq is None or event.seq > newest_seq):
                newest_seq = event.seq
            if plyr:
                plyr_time_us = newest_time_us

        if self._records is not None and (changes or deletes):
            # before anything is admitted: the bytes of tasks that finished are free
            await self._records.refresh()
        if changes:
            counts.changes = len(changes)
            await self._handle_changes(changes, counts)
        if deletes:
            await self._markers.track_deleted(self._paced(deletes, counts))
            counts.track_deletes = len(deletes)
        if resyncs:
            await self._markers.repo_resynced(resyncs)
            counts.resyncs = len(resyncs)

        if newest_time_us is not None:
            counts.last_event_time_us = newest_time_us
            self._cursor.advance(newest_time_us, newest_seq)
        else:
            self._cursor.advance_seq(newest_seq)
        self._stats.merge(counts)
        if self._flood is not None:
            self._stats.task_bytes_held = self._flood.held_bytes
            self._stats.tasks_held = self._flood.held_tasks
        return BatchPositions(newest_time_us, newest_seq, plyr_time_us)

    def _paced(self, deletes: list[TrackDelete], counts: ConsumerStats) -> list[DueDelete]:
        now = self._clock()
        if self._flood is None:
            return [DueDelete(delete, now) for delete in deletes]
        due: list[DueDelete] = []
        for delete in deletes:
            admission = self._flood.admit(
                delete.did,
                delete.track_uri,
                now=now,
                settle=0.0,
                size=task_bytes(delete.track_uri, (delete.did,)),
                task_key=withdraw_key(delete.track_uri),
            )
            if admission is None:
                counts.skipped[SkipReason.FLOOD_SHED] += 1
                continue
            counts.flood_deferred += admission.deferred
            due.append(DueDelete(delete, admission.when))
        return due

    async def _handle_changes(self, changes: list[ListChange], counts: ConsumerStats) -> None:
        known = await self._guard.load({change.playlist_uri for change in changes})
        accepted: list[ListChange] = []
        accepted_states: dict[str, GuardState] = {}
        for change in changes:
            # judged against the batch's own earlier changes too, so a duplicate
            # inside one batch is caught exactly like one across batches.
            verdict = judge(known.get(change.playlist_uri), change)
            if verdict is not None:
                counts.skipped[verdict] += 1
                continue
            state = GuardState.of(change)
            known[change.playlist_uri] = state
            accepted_states[change.playlist_uri] = state
            accepted.append(change)

        if not accepted:
            return
        report = await self._enqueuer.enqueue(accepted)
        # recorded only now: had the enqueue failed, the guard must not claim the
        # change was handled, or the replay would skip it and lose it.
        await self._guard.record(accepted_states)

        if report.struck:
            counts.skipped[SkipReason.STRUCK] += report.struck
        if report.shed:
            counts.skipped[SkipReason.FLOOD_SHED] += report.shed
        counts.flood_deferred += report.deferred
        for record in report.enqueued:
            if record.task == "recompute":
                counts.recomputes += 1
            else:
                counts.forgets += 1
        if self._observer is not None:
            for record in report.enqueued:
                self._observer(record)
