"""per-DID flood control: one repo's edits cannot crowd everyone else's recomputes out.

the threat: anyone can write `fm.plyr.list` records to their own repo as fast as
their PDS lets them. the debounce already makes rapid edits of *one* playlist
cost one recompute (its docket key is replaced, its start pushed out), so the
real vector is one DID touching many distinct playlists: every one of them is a
recompute (turbopuffer queries, PostgreSQL reads) due a couple of seconds later,
ahead of everybody else's in the workers' queue.

the policy, per repo DID, counted in *new pending tasks* (not in commits):

- a change to a playlist whose task is still pending takes that task over: its
  newest state replaces the old one in the same slot (coalesced), and costs no
  token. a thousand edits of one playlist are one slot.
- a change that needs a new task spends a token of a bucket refilled at
  `changes_per_minute`, holding `burst`. within the bucket the task starts after
  the usual settle delay; past it, its start is deferred to the moment the
  bucket would have allowed it (a generic cell rate algorithm: the DID's tasks
  become due at that pace, and never sit ahead of anyone else's in the queue).
- a DID holding `max_pending` pending tasks gets no new one: that change is shed
  and counted (`skipped:flood_shed`) and logged once per flood.

the guarantee:

- others are not starved: whatever one DID sends, at most `burst` of its tasks
  plus `changes_per_minute` a minute fall due; everyone else's keep their
  settle delay (their `when` is never pushed back by someone else's flood).
- nothing legitimate is lost: a deferred change is rescheduled, not dropped,
  and a later edit of the same playlist only refreshes the state its slot will
  compute. shedding starts only when one DID has `max_pending` playlists waiting
  (600 by default: ten minutes of work at the default pace), which no person
  editing playlists reaches; even then the owner still gets the playlist's
  recommendations, computed by the API on request (a cache miss), and the next
  edit once the flood is over is precomputed again.
- bounded in bytes, until a task *finishes*: a task's arguments live in Redis
  (docket's parked task, its stream entry, its run record) from when it is
  scheduled until docket's run record of it is gone, `EXECUTION_TTL` after it
  ended (completed, dropped, given up or cancelled). one task of a full playlist
  is ~40 KiB, and a task can stay long after it fell due: a playlist plyr.fm has
  not ingested waits up to `PLAYLIST_WAIT_SECONDS` (120 s), a transient fault
  retries with backoff for minutes. so every admitted task's size (`task_bytes`)
  is *held* under its docket key until the task is known gone, not released
  when it falls due: a DID holds at most `max_pending_bytes` and all DIDs
  together at most `max_total_pending_bytes`; past either, new work is shed
  exactly like past `max_pending`. a new task under a held key (an edit of a
  playlist whose task is retrying) replaces the held bytes, as docket's replace
  overwrites the arguments: a retry never counts twice. which held tasks are
  gone is asked of docket, not guessed (`jetstream.task_records`: one pipelined
  check a second of the keys that fell due; `release` takes the answer). so the
  task arguments in Redis of everything the consumer admitted are at most
  `max_total_pending_bytes` of payload, whatever 10 or 10,000 accounts send at
  their pace, while their tasks wait, retry or linger as run records. (before,
  the bytes were released when a task fell due: 10 accounts at the allowed pace
  with playlists plyr.fm never ingested grew Redis by 139 MB in 60 s, issue 23.)
  the slack: a task that ended is still counted until the next check (about a
  second), which errs on the side of shedding, never of admitting.
- bounded: pending tasks per DID <= `max_pending`; this object forgets a DID
  once its bucket is full again, none of its tasks is pending and none holds
  bytes, so its size follows the DIDs active in the last few minutes, not the
  firehose's history.

the state lives in the consumer's memory: exactly one consumer runs. a restart
forgets buckets (a fresh burst) and slots (the next change of a playlist gets a
new slot; docket's key still holds one task per playlist), but not the bytes:
before its first batch the consumer finds every task docket still keeps under
the consumer's key families and holds its bytes again (`restore`), so a
restart never opens the bound.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

# how often (in clock seconds) idle DIDs are forgotten.
PRUNE_INTERVAL_SECONDS = 60.0
# what a task costs in Redis beyond its strings: docket's hash fields, the
# schedule's sorted-set entry and the pickled list's per-item framing. measured
# against a real redis-server in tests/test_hardening_stream.py.
TASK_OVERHEAD_BYTES = 1024
ITEM_OVERHEAD_BYTES = 8


def task_bytes(playlist_uri: str, strings: tuple[str, ...]) -> int:
    """the Redis payload a task with these arguments is counted as (see the module doc)."""
    return (
        TASK_OVERHEAD_BYTES
        + len(playlist_uri)
        + sum(len(value) + ITEM_OVERHEAD_BYTES for value in strings)
    )


@dataclass(frozen=True)
class FloodLimits:
    """the per-DID bounds (see `Settings.jetstream_did_*`)."""

    changes_per_minute: float = 60.0
    burst: int = 30
    max_pending: int = 600
    # 2 MiB: ~50 full 500-track playlists at real URI lengths held at once (pending,
    # running, waiting for plyr.fm's ingest, or a run record for a minute after),
    # more than any person has in flight (the burst is 30), far below what hurts Redis.
    max_pending_bytes: int = 2 * 1024 * 1024
    # 64 MiB: ~1,600 full playlists held across everyone; the whole service sees
    # a few dozen at a time, and Redis on a small machine keeps its head.
    max_total_pending_bytes: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        if (
            self.changes_per_minute <= 0
            or self.burst < 1
            or self.max_pending < 1
            or self.max_pending_bytes < 1
            or self.max_total_pending_bytes < self.max_pending_bytes
        ):
            raise ValueError(f"flood limits must be positive and nested: {self}")

    @property
    def interval(self) -> float:
        """seconds between two tasks of one DID, past its burst."""
        return 60.0 / self.changes_per_minute


@dataclass(frozen=True, slots=True)
class Admission:
    """when a change's task may run (unix seconds), and whether the limit delayed it."""

    when: float
    deferred: bool


@dataclass(slots=True)
class _Slot:
    start: float  # when the bucket let the task begin (before its settle delay)
    due: float  # when the task is scheduled; the slot is pending until then


@dataclass(slots=True)
class _Held:
    """the bytes a task holds in Redis until docket no longer keeps it."""

    did: str
    size: int
    due: float  # it cannot have finished before this (a cancel only makes it sooner)
    stamp: int  # which admission held them: a check begun before a replace frees nothing


@dataclass(slots=True)
class _Flow:
    """one DID's bucket (as a theoretical arrival time), its pending slots, its held bytes."""

    arrival: float = 0.0
    slots: dict[str, _Slot] = field(default_factory=dict)
    expired_at: float = 0.0
    warned_deferring: bool = False
    warned_shedding: bool = False
    size: int = 0  # the bytes its tasks hold
    tasks: int = 0  # how many of its tasks hold bytes

    def expire(self, now: float) -> None:
        """drop pending slots whose task has fallen due (once per moment: a flood of
        shed changes in one batch does not rescan them every time). their bytes
        stay held until the task is gone (`FloodControl.release`)."""
        if now <= self.expired_at:
            return
        self.expired_at = now
        self.slots = {uri: slot for uri, slot in self.slots.items() if slot.due > now}


class FloodControl:
    """decides, change by change, when each DID's tasks may run (see the module doc)."""

    def __init__(self, limits: FloodLimits) -> None:
        self.limits = limits
        self._flows: dict[str, _Flow] = {}
        self._held: dict[str, _Held] = {}  # docket task key -> its bytes, in check order
        self._stamps = itertools.count(1)
        self._next_prune = 0.0
        self.held_bytes = 0  # every DID's held bytes together

    def holds(self, did: str, playlist_uri: str, *, now: float) -> bool:
        """whether a task for `playlist_uri` is pending (a shed change must cancel it,
        or it would run an older state than the record now holds)."""
        flow = self._flows.get(did)
        held = None if flow is None else flow.slots.get(playlist_uri)
        return held is not None and held.due > now

    @property
    def tracked_dids(self) -> int:
        return len(self._flows)

    @property
    def held_tasks(self) -> int:
        """tasks whose bytes are held (pending, running, retrying, or a run record)."""
        return len(self._held)

    def pending(self, did: str) -> int:
        """slots of `did` counted as pending (expired ones may linger until checked)."""
        flow = self._flows.get(did)
        return 0 if flow is None else len(flow.slots)

    def held_by(self, did: str) -> int:
        """the bytes `did`'s tasks hold."""
        flow = self._flows.get(did)
        return 0 if flow is None else flow.size

    def admit(
        self,
        did: str,
        playlist_uri: str,
        *,
        now: float,
        settle: float,
        size: int = 0,
        task_key: str | None = None,
    ) -> Admission | None:
        """when the task for this change of `playlist_uri` (arguments of `size`
        bytes, kept by docket under `task_key`, by default the URI) may run, at the
        earliest `now + settle`; None when `did` already holds its cap of pending
        tasks or bytes, or everyone together do."""
        if now >= self._next_prune:
            self._prune(now)
        flow = self._flows.get(did)
        if flow is None:
            flow = self._flows[did] = _Flow(arrival=now)

        held = flow.slots.get(playlist_uri)
        taking_over = held is not None and held.due > now
        if not taking_over and len(flow.slots) >= self.limits.max_pending:
            flow.expire(now)
        if not taking_over and len(flow.slots) >= self.limits.max_pending:
            self._warn_shedding(did, flow)
            return None
        key = playlist_uri if task_key is None else task_key
        if not self._room_for(did, flow, key, size):
            self._warn_shedding(did, flow)
            return None
        # taking over, the newest state replaces the pending task: no new work, no token.
        start = held.start if held is not None and taking_over else self._spend(flow, now)

        when = max(start, now) + settle
        flow.slots[playlist_uri] = _Slot(start, when)
        self._hold(key, did, size, when)
        deferred = start > now
        if deferred:
            self._warn_deferring(did, flow, start - now)
        return Admission(when, deferred)

    def restore(self, did: str, task_key: str, size: int, *, now: float) -> None:
        """hold the bytes of a task docket already keeps (admitted before a restart),
        unless this object already holds that key."""
        if task_key in self._held:
            return
        if did not in self._flows:
            self._flows[did] = _Flow(arrival=now)
        self._hold(task_key, did, size, now)

    def due_for_check(self, now: float, limit: int) -> list[tuple[str, int]]:
        """up to `limit` held tasks that have fallen due (only those can have ended),
        as (task key, stamp), the ones checked longest ago first: each one checked
        moves to the back, so a long wait never starves the others of a check."""
        chosen: list[tuple[str, int]] = []
        for key, held in self._held.items():
            if held.due <= now:
                chosen.append((key, held.stamp))
                if len(chosen) >= limit:
                    break
        for key, _ in chosen:
            self._held[key] = self._held.pop(key)
        return chosen

    def release(self, gone: Iterable[tuple[str, int]]) -> int:
        """docket keeps no more of these tasks (as `due_for_check` named them): their
        bytes are free, unless the key was admitted again since. the bytes freed."""
        freed = 0
        for key, stamp in gone:
            held = self._held.get(key)
            if held is not None and held.stamp == stamp:
                self._drop(key)
                freed += held.size
        return freed

    def _room_for(self, did: str, flow: _Flow, key: str, size: int) -> bool:
        """whether `size` more bytes fit the DID's and the total bound. a task under a
        held key replaces its bytes: docket's replace overwrites the arguments."""
        previous = self._held.get(key)
        freed = 0 if previous is None else previous.size
        own = freed if previous is not None and previous.did == did else 0
        return (
            flow.size - own + size <= self.limits.max_pending_bytes
            and self.held_bytes - freed + size <= self.limits.max_total_pending_bytes
        )

    def _hold(self, key: str, did: str, size: int, due: float) -> None:
        self._drop(key)
        self._held[key] = _Held(did, size, due, next(self._stamps))
        flow = self._flows[did]
        flow.size += size
        flow.tasks += 1
        self.held_bytes += size

    def _drop(self, key: str) -> None:
        held = self._held.pop(key, None)
        if held is None:
            return
        flow = self._flows[held.did]  # never pruned while it holds a task
        flow.size -= held.size
        flow.tasks -= 1
        self.held_bytes -= held.size

    def _spend(self, flow: _Flow, now: float) -> float:
        """one token: the earliest start the bucket allows (GCRA), and the bucket moved on."""
        interval = self.limits.interval
        start = max(now, flow.arrival - (self.limits.burst - 1) * interval)
        flow.arrival = max(flow.arrival, now) + interval
        return start

    def _prune(self, now: float) -> None:
        """forget DIDs whose bucket is full again, with no pending task and no bytes held."""
        self._next_prune = now + PRUNE_INTERVAL_SECONDS
        for did in list(self._flows):
            flow = self._flows[did]
            flow.expire(now)
            if not flow.slots and not flow.tasks and flow.arrival <= now:
                del self._flows[did]

    def _warn_deferring(self, did: str, flow: _Flow, delay: float) -> None:
        if not flow.warned_deferring:
            flow.warned_deferring = True
            logger.warning(
                "%s is past %g changes a minute: its recomputes are paced (first one %.0f s out)",
                did,
                self.limits.changes_per_minute,
                delay,
            )

    def _warn_shedding(self, did: str, flow: _Flow) -> None:
        if not flow.warned_shedding:
            flow.warned_shedding = True
            logger.warning(
                "%s: new work shed (it holds %d pending tasks and %d bytes of task "
                "arguments in Redis, everyone %d): further playlists are not precomputed "
                "until some finish (the API computes them on request)",
                did,
                len(flow.slots),
                flow.size,
                self.held_bytes,
            )
