"""what the reconcile loop does with one playlist: a pure function of what it read.

inputs, per playlist of a page: its row in plyr.fm's database (current version,
`updated_at`), and from one pipelined Redis read: the remaining life of the cache
entry of that version, whether the API saw it viewed recently, whether an
expiry of this very version was let happen (inactive), and the version the
Jetstream consumer last accepted for its record.

    entry of the current version   active?   ->  verdict
    missing, never let lapse       -           compute (cold, or missed_by_firehose);
                                               a public version changed since the last
                                               pass and within the grace: left to the
                                               firehose until the next pass (recent)
    missing, lapsed (inactive)     no          skip (it is computed on its next view)
    missing, lapsed                yes         compute (viewed again since)
    missing, its record deleted    -           skip (its PDS said so for this very
      on its PDS                               version: plyr.fm's row outlives it)
    present, expiring before the   yes         refresh (recompute now)
      next pass can act
    present, expiring              no          let it lapse (and remember that)
    present                        -           warm

"missed by the firehose" is the signal that the fast path failed: a public
playlist whose current version changed since the previous pass, long enough ago
that the consumer should have delivered it (`grace`), while the consumer accepted
some other version of that record (or none).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from engine.types import PlaylistRow
from worker.recs.version import version_token
from worker.store.reconcile_probe import MISSING, Probe  # the read behind each verdict


class Action(StrEnum):
    SKIP = "skip"
    COMPUTE = "compute"  # the current version is not cached: compute it
    REFRESH = "refresh"  # cached, about to expire, in use: recompute before it does


class Reason(StrEnum):
    WARM = "warm"
    COLD = "cold"
    MISSED_BY_FIREHOSE = "missed_by_firehose"
    REFRESH = "refresh"
    LAPSING = "lapsing"  # inactive and about to expire: left to lapse
    LAPSED = "lapsed"  # inactive and expired: computed on its next view
    NO_VERSION = "no_version"  # nothing to key a cache entry on
    DELETED = "deleted_known"  # its PDS said this version's record is deleted
    RECENT = "recent"  # changed moments ago: left to the firehose until the next pass


@dataclass(frozen=True, slots=True)
class Policy:
    interval_seconds: float  # time to the next pass
    margin_seconds: float  # extra lead before expiry (queue, a pass's length)
    active_seconds: float  # REFRESH_ACTIVE_DAYS, in seconds
    heal_grace_seconds: float


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    reason: Reason
    token: str | None


def is_active(playlist: PlaylistRow, probe: Probe, *, now: datetime, policy: Policy) -> bool:
    """edited (plyr.fm's `updated_at`) or viewed (the API's activity key) lately."""
    edited_ago = (now - playlist.updated_at).total_seconds()
    return probe.viewed or edited_ago <= policy.active_seconds


def decide(
    playlist: PlaylistRow,
    probe: Probe,
    *,
    now: datetime,
    policy: Policy,
    previous_pass_started: datetime | None,
    firehose_horizon: datetime,
) -> Verdict:
    """what to do with `playlist` (see the table in the module docstring)."""
    token = version_token(playlist)
    if token is None:
        return Verdict(Action.SKIP, Reason.NO_VERSION, None)
    active = is_active(playlist, probe, now=now, policy=policy)
    if probe.entry_ttl_ms == MISSING:
        if probe.gone_token == token:
            return Verdict(Action.SKIP, Reason.DELETED, token)
        if probe.lapsed_token == token and not active:
            return Verdict(Action.SKIP, Reason.LAPSED, token)
        if _changed_since(playlist, probe, previous_pass_started, policy.heal_grace_seconds):
            if playlist.updated_at > firehose_horizon:
                # the firehose may still deliver it (the fast path): the next pass looks
                # again, and counts it if it is still missing
                return Verdict(Action.SKIP, Reason.RECENT, token)
            return Verdict(Action.COMPUTE, Reason.MISSED_BY_FIREHOSE, token)
        return Verdict(Action.COMPUTE, Reason.COLD, token)
    # -1 (no TTL) never expires: nothing to refresh
    lead_ms = (policy.interval_seconds + policy.margin_seconds) * 1000
    if 0 <= probe.entry_ttl_ms <= lead_ms:
        if active:
            return Verdict(Action.REFRESH, Reason.REFRESH, token)
        return Verdict(Action.SKIP, Reason.LAPSING, token)
    return Verdict(Action.SKIP, Reason.WARM, token)


def _changed_since(
    playlist: PlaylistRow,
    probe: Probe,
    previous_pass_started: datetime | None,
    grace_seconds: float,
) -> bool:
    """a public version newer than the previous pass that the consumer did not accept."""
    if playlist.is_private or not playlist.record_uri or not playlist.record_cid:
        return False  # no record: nothing travels on the firehose
    if previous_pass_started is None:
        return False  # a cold start: nothing says the firehose should have had it
    # older than the previous pass (less the grace, within which it left a version
    # to the firehose): that pass saw it and acted
    if playlist.updated_at < previous_pass_started - timedelta(seconds=grace_seconds):
        return False
    return probe.firehose_cid != playlist.record_cid


def firehose_horizon(now: datetime, *, grace_seconds: float) -> datetime:
    """the newest `updated_at` the consumer should have delivered by now.

    not bounded by the consumer's cursor: a blind host (connected, sending nothing of
    ours) and a quiet firehose both leave the cursor where it was, and that is exactly
    when healing must count what plyr.fm's database has and the firehose did not."""
    return now - timedelta(seconds=grace_seconds)
