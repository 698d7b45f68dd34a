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
- bounded in bytes too: a task's arguments live in Redis until it runs, and one
  task of a full playlist is ~40 KiB, so a count alone let one account park
  hundreds of megabytes. each slot carries its arguments' size (`task_bytes`);
  a DID holds at most `max_pending_bytes` of them and all DIDs together at most
  `max_total_pending_bytes`, past which new work is shed exactly like past
  `max_pending`. so the task arguments pending in Redis (admitted, not yet due)
  are at most `max_total_pending_bytes` of payload, whatever anyone sends.
- bounded: pending tasks per DID <= `max_pending`; this object forgets a DID
  once its bucket is full again and none of its tasks is pending, so its size
  follows the DIDs active in the last few minutes, not the firehose's history.

the state lives in the consumer's memory: exactly one consumer runs, and a
restart only forgets buckets (a fresh burst) and slots (the next change of a
playlist gets a new slot; docket's key still holds one task per playlist).
"""

from __future__ import annotations

import logging
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
    # 2 MiB: ~50 full 500-track playlists at real URI lengths, more than any
    # person has waiting at once (the burst is 30), far below what hurts Redis.
    max_pending_bytes: int = 2 * 1024 * 1024
    # 64 MiB: ~1,600 full playlists pending across everyone; the whole service
    # sees a few dozen at a time, and Redis on a small machine keeps its head.
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
    size: int = 0  # its arguments' bytes (`task_bytes`)


@dataclass(slots=True)
class _Flow:
    """one DID's bucket (as a theoretical arrival time) and its pending slots."""

    arrival: float = 0.0
    slots: dict[str, _Slot] = field(default_factory=dict)
    expired_at: float = 0.0
    warned_deferring: bool = False
    warned_shedding: bool = False
    size: int = 0  # the bytes of its pending slots

    def expire(self, now: float) -> int:
        """drop slots whose task has fallen due (once per moment: a flood of shed
        changes in one batch does not rescan them every time); the bytes freed."""
        if now <= self.expired_at:
            return 0
        self.expired_at = now
        self.slots = {uri: slot for uri, slot in self.slots.items() if slot.due > now}
        before, self.size = self.size, sum(slot.size for slot in self.slots.values())
        return before - self.size


class FloodControl:
    """decides, change by change, when each DID's tasks may run (see the module doc)."""

    def __init__(self, limits: FloodLimits) -> None:
        self.limits = limits
        self._flows: dict[str, _Flow] = {}
        self._next_prune = 0.0
        self._next_sweep = 0.0
        self.pending_bytes = 0  # all DIDs' pending slots together

    def holds(self, did: str, playlist_uri: str, *, now: float) -> bool:
        """whether a task for `playlist_uri` is pending (a shed change must cancel it,
        or it would run an older state than the record now holds)."""
        flow = self._flows.get(did)
        held = None if flow is None else flow.slots.get(playlist_uri)
        return held is not None and held.due > now

    @property
    def tracked_dids(self) -> int:
        return len(self._flows)

    def pending(self, did: str) -> int:
        """slots of `did` counted as pending (expired ones may linger until checked)."""
        flow = self._flows.get(did)
        return 0 if flow is None else len(flow.slots)

    def admit(
        self, did: str, playlist_uri: str, *, now: float, settle: float, size: int = 0
    ) -> Admission | None:
        """when the task for this change of `playlist_uri` (arguments of `size`
        bytes) may run, at the earliest `now + settle`; None when `did` already
        holds its cap of pending tasks or bytes, or everyone together do."""
        if now >= self._next_prune:
            self._prune(now)
        flow = self._flows.get(did)
        if flow is None:
            flow = self._flows[did] = _Flow(arrival=now)

        held = flow.slots.get(playlist_uri)
        taking_over = held is not None and held.due > now
        if not taking_over and len(flow.slots) >= self.limits.max_pending:
            self.pending_bytes -= flow.expire(now)
        if not taking_over and len(flow.slots) >= self.limits.max_pending:
            self._warn_shedding(did, flow)
            return None
        if not self._room_for(flow, held if taking_over else None, size, now):
            self._warn_shedding(did, flow)
            return None
        # taking over, the newest state replaces the pending task: no new work, no token.
        start = held.start if held is not None and taking_over else self._spend(flow, now)

        when = max(start, now) + settle
        self._put(flow, playlist_uri, _Slot(start, when, size))
        deferred = start > now
        if deferred:
            self._warn_deferring(did, flow, start - now)
        return Admission(when, deferred)

    def _room_for(self, flow: _Flow, held: _Slot | None, size: int, now: float) -> bool:
        """whether `size` more bytes (in place of `held`'s) fit the DID's and the total bound."""
        freed = 0 if held is None else held.size
        if flow.size - freed + size > self.limits.max_pending_bytes:
            self.pending_bytes -= flow.expire(now)
        if flow.size - freed + size > self.limits.max_pending_bytes:
            return False
        if self.pending_bytes - freed + size > self.limits.max_total_pending_bytes:
            self._sweep(now)
        return self.pending_bytes - freed + size <= self.limits.max_total_pending_bytes

    def _put(self, flow: _Flow, playlist_uri: str, slot: _Slot) -> None:
        old = flow.slots.pop(playlist_uri, None)
        freed = 0 if old is None else old.size
        flow.slots[playlist_uri] = slot
        flow.size += slot.size - freed
        self.pending_bytes += slot.size - freed

    def _sweep(self, now: float) -> None:
        """expire every DID's fallen-due slots, at most once a second: the total is
        near its bound, so the lazily kept per-DID sizes must be made exact."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + 1.0
        for flow in self._flows.values():
            self.pending_bytes -= flow.expire(now)

    def _spend(self, flow: _Flow, now: float) -> float:
        """one token: the earliest start the bucket allows (GCRA), and the bucket moved on."""
        interval = self.limits.interval
        start = max(now, flow.arrival - (self.limits.burst - 1) * interval)
        flow.arrival = max(flow.arrival, now) + interval
        return start

    def _prune(self, now: float) -> None:
        """forget DIDs whose bucket is full again and whose tasks have all fallen due."""
        self._next_prune = now + PRUNE_INTERVAL_SECONDS
        for did in list(self._flows):
            flow = self._flows[did]
            self.pending_bytes -= flow.expire(now)
            if not flow.slots and flow.arrival <= now:
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
                "%s holds %d pending recomputes: further playlists are not precomputed "
                "until they run (the API computes them on request)",
                did,
                self.limits.max_pending,
            )
