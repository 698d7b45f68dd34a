"""which PDS failures are remembered, for what, and for how long (no I/O, no clock).

a PDS that timed out or answered junk will most likely do so again a moment
later: asking it again costs a compute slot for the whole timeout (issue 23,
finding 5) or a read and a decode (finding 1). so a failure is remembered and
the next request refused at once, until a backoff passes.

what a failure says decides what is remembered:
- the *host* failed (`HOST`): no answer in time, no answer at all, a 5xx, a 429
  (a PDS that asks for less gets a backoff), a body no PDS software writes (not
  JSON, not a getRecord/listRecords answer, an encoding we did not ask for), a
  redirect or an address it may not be asked at. every record on that host waits.
- the *record* was refused (`RECORD`): too large (in bytes or in structure), too
  many items, not a playlist. a PDS holds whatever its users wrote, and one big
  host serves millions of repos: one user's oversized record must not shut out
  everyone else on bsky's hosts, so only that record waits.
- anything else (`None`: not found, another 4xx, an album) is an answer, not a fault.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final

from jetstream.events import InvalidReason


class Scope(Enum):
    HOST = "host"
    RECORD = "record"


HOST_FAILING: Final = "host_failing"  # the reason a remembered host's requests get
RECORD_FAILING: Final = "record_failing"  # ... and a remembered record's

_HOST_FAULTS: Final = frozenset(
    {
        "timeout",
        "unreachable",
        "status_5xx",
        "rate_limited",
        "bad_response",
        "bad_encoding",
        "redirect",
        "not_https",
        "private_address",
        "no_address",
    }
)
_RECORD_FAULTS: Final = frozenset(
    {"too_large", "too_complex", *(reason.value for reason in InvalidReason)}
)


def scope_of(reason: str) -> Scope | None:
    """what a failure with this reason word says is failing, if anything."""
    if reason in _HOST_FAULTS:
        return Scope.HOST
    if reason in _RECORD_FAULTS:
        return Scope.RECORD
    return None


@dataclass(frozen=True, slots=True)
class Backoff:
    """how long a failing host or record is refused: `first_seconds` after its
    first failure, doubling with each failure in a row, at most `max_seconds` for a
    host and `max_record_seconds` for a record (its owner may fix it any moment, and
    refusing it again costs a few milliseconds); `max_remembered` bounds the memory
    (the oldest failure is forgotten first)."""

    first_seconds: float = 10.0
    max_seconds: float = 600.0
    max_record_seconds: float = 60.0
    max_remembered: int = 10_000

    def __post_init__(self) -> None:
        if (
            not 0 <= self.first_seconds <= min(self.max_seconds, self.max_record_seconds)
            or self.max_remembered < 1
        ):
            raise ValueError("backoff bounds must be ordered and the memory positive")

    def seconds(self, failures_in_a_row: int, scope: Scope = Scope.HOST) -> float:
        """the wait after the `failures_in_a_row`-th failure (1 for the first)."""
        doublings = min(max(failures_in_a_row - 1, 0), 32)  # 2**32 passes any max
        bound = self.max_seconds if scope is Scope.HOST else self.max_record_seconds
        return min(self.first_seconds * float(2**doublings), bound)
