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


@dataclass(frozen=True)
class FloodLimits:
    """the per-DID bounds (see `Settings.jetstream_did_*`)."""

    changes_per_minute: float = 60.0
    burst: int = 30
    max_pending: int = 600

    def __post_init__(self) -> None:
        if self.changes_per_minute <= 0 or self.burst < 1 or self.max_pending < 1:
            raise ValueError(f"flood limits must be positive: {self}")

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
class _Flow:
    """one DID's bucket (as a theoretical arrival time) and its pending slots."""

    arrival: float = 0.0
    slots: dict[str, _Slot] = field(default_factory=dict)
    expired_at: float = 0.0
    warned_deferring: bool = False
    warned_shedding: bool = False

    def expire(self, now: float) -> None:
        """drop slots whose task has fallen due (once per moment: a flood of shed
        changes in one batch does not rescan them every time)."""
        if now > self.expired_at:
            self.expired_at = now
            self.slots = {uri: slot for uri, slot in self.slots.items() if slot.due > now}


class FloodControl:
    """decides, change by change, when each DID's tasks may run (see the module doc)."""

    def __init__(self, limits: FloodLimits) -> None:
        self.limits = limits
        self._flows: dict[str, _Flow] = {}
        self._next_prune = 0.0

    @property
    def tracked_dids(self) -> int:
        return len(self._flows)

    def pending(self, did: str) -> int:
        """slots of `did` counted as pending (expired ones may linger until checked)."""
        flow = self._flows.get(did)
        return 0 if flow is None else len(flow.slots)

    def admit(self, did: str, playlist_uri: str, *, now: float, settle: float) -> Admission | None:
        """when the task for this change of `playlist_uri` may run, at the earliest
        `now + settle`; None when `did` already holds its cap of pending tasks."""
        if now >= self._next_prune:
            self._prune(now)
        flow = self._flows.get(did)
        if flow is None:
            flow = self._flows[did] = _Flow(arrival=now)

        held = flow.slots.get(playlist_uri)
        if held is not None and held.due > now:
            # the newest state takes over the pending task: no new work, no token.
            start = held.start
        else:
            if len(flow.slots) >= self.limits.max_pending:
                flow.expire(now)
            if len(flow.slots) >= self.limits.max_pending:
                self._warn_shedding(did, flow)
                return None
            start = self._spend(flow, now)

        when = max(start, now) + settle
        flow.slots[playlist_uri] = _Slot(start, when)
        deferred = start > now
        if deferred:
            self._warn_deferring(did, flow, start - now)
        return Admission(when, deferred)

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
            flow.expire(now)
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
