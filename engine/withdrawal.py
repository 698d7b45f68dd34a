"""withdrawals: a track that stops being surfaceable after answers carrying it were cached.

eligibility (engine.eligibility) is applied when an answer is computed; an answer
then lives in the cache for a day. a takedown, a label, a visibility change, a
deactivated artist, a deleted row or a deleted track record must take the track
out of every answer within seconds instead (DESIGN.md, "Freshness"). the worker
re-checks the tracks of the live answers in rounds and keeps a set of withdrawn
ids; every reader screens answers against it. this module is the pure part:

- `decide`: what one round changes, from the sets it read;
- `screened`: an answer without the withdrawn tracks;
- `RoundRecord`: what a round leaves for the readers (when it began, its counters);
- `round_covers`: whether a reader may serve a cached answer screened by that set
  alone, or must check the answer's tracks with plyr.fm's database itself.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

import orjson

from engine.cache import CachedRecommendations

MAX_RECORD_BYTES: Final = 4096  # a record is ~200 bytes; a bigger value is not ours
MAX_TOTALS: Final = 32  # counter names a record may carry


class Source(StrEnum):
    """where a withdrawal was seen."""

    CATALOG = "catalog"  # plyr.fm's database: the check round found the track ineligible
    FIREHOSE = "firehose"  # the track's own record was deleted in its owner's repo


@dataclass(frozen=True, slots=True)
class RoundDecision:
    """what a check round changes in the withdrawn set."""

    withdrawn: frozenset[int]  # newly ineligible: marked, and their carriers recomputed
    reinstated: frozenset[int]  # marked by an earlier round, eligible again: unmarked


def decide(
    *,
    live: Collection[int],
    eligible: Collection[int],
    withdrawn: Collection[int],
    firehose: Collection[int],
) -> RoundDecision:
    """one round's changes. `live`: the tracks of the live answers; `eligible`: those of
    `live` and of `withdrawn` that plyr.fm's database still surfaces; `withdrawn`: the
    set as it is; `firehose`: its members whose record was deleted, which the database
    cannot reinstate (plyr.fm may keep the row for a while after the delete)."""
    eligible_set = set(eligible)
    withdrawn_set = set(withdrawn)
    newly = {track_id for track_id in live if track_id not in eligible_set} - withdrawn_set
    # no hurry for a lifted takedown (DESIGN.md): unmarked, it returns from the next recompute
    reinstated = (withdrawn_set - set(firehose)) & eligible_set
    return RoundDecision(frozenset(newly), frozenset(reinstated))


def screened(value: CachedRecommendations, withdrawn: Collection[int]) -> CachedRecommendations:
    """`value` without its withdrawn tracks (the same object when none is withdrawn)."""
    if not withdrawn:
        return value
    kept = [track for track in value.tracks if track.id not in withdrawn]
    more = tuple(ranked for ranked in value.more if ranked.id not in withdrawn)
    if len(kept) == len(value.tracks) and len(more) == len(value.more):
        return value
    return dataclasses.replace(value, tracks=kept, more=more)


@dataclass(frozen=True, slots=True)
class RoundRecord:
    """what the last completed check round leaves beside the withdrawn set."""

    started_at: float  # wall clock (unix s) when it began reading: it covers changes before
    seconds: float  # its duration up to the set being written
    checked: int  # tracks it asked plyr.fm's database about
    withdrawn: int  # tracks in the withdrawn set after it
    totals: Mapping[str, int] = field(default_factory=dict)  # the service's counters

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "started_at": self.started_at,
                "seconds": self.seconds,
                "checked": self.checked,
                "withdrawn": self.withdrawn,
                "totals": dict(self.totals),
            }
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> RoundRecord | None:
        """the record, or None for a value that is not one (treated as no round at all)."""
        if len(raw) > MAX_RECORD_BYTES:
            return None
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(data, dict):
            return None
        started_at, seconds = data.get("started_at"), data.get("seconds")
        checked, withdrawn = data.get("checked"), data.get("withdrawn")
        totals = data.get("totals", {})
        if not (
            isinstance(started_at, int | float)
            and isinstance(seconds, int | float)
            and isinstance(checked, int)
            and isinstance(withdrawn, int)
        ):
            return None
        if not (_finite(started_at) and _finite(seconds) and _count(checked) and _count(withdrawn)):
            return None
        if not isinstance(totals, dict) or len(totals) > MAX_TOTALS:
            return None
        kept = {str(name): value for name, value in totals.items() if _count(value)}
        return cls(float(started_at), float(seconds), int(checked), int(withdrawn), kept)


def round_covers(
    record: RoundRecord | None, *, now: float, stale_seconds: float, not_before: float = 0.0
) -> bool:
    """whether the withdrawn set `record`'s round left covers every withdrawal older
    than `stale_seconds`, so a cached answer screened by it may be served as it is.

    `not_before` is when the reader last regained Redis after losing it: a withdrawal
    made during the outage may be one no round has seen yet, however short the outage
    was, so only a round begun since then covers it. no record (no round ran lately,
    or never) covers nothing.
    """
    if record is None:
        return False
    return record.started_at >= max(now - stale_seconds, not_before)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
