"""one phase of `python -m bench abuse`'s API table, and its verdict.

the verdict rests on what can be judged on a shared machine: every legitimate
answer the quiet one, every legitimate user signed in, every legitimate miss
computed, and the server's resources inside their bounds. the p99 beside the quiet
window's is shown, not judged: on two cores shared with other work it moves by more
than any attack that is held off (the table shows the quiet windows' own spread).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Final

from bench.abuse.attacks import Attack
from bench.abuse.pds_world import HOSTILE_KINDS
from jetstream.flood import FloodLimits

# a legitimate miss: the record read from its owner's PDS and computed inline
MISS_OK: Final = "computed"
# the API's PDS client: a refused record / a failing host is asked again after 10 s
FIRST_BACKOFF_SECONDS: Final = 10.0
MAX_COMPUTES_PER_PDS_HOST: Final = 8  # AnswerLimits: misses waiting on one host at once
# a pending task in Redis beyond its counted payload (docket's hash, the schedule's
# entry, the pickled list's framing): README, "Redis bytes"
REDIS_FACTOR: Final = 4
TASK_SLACK_BYTES: Final = 4 * 1024


@dataclass
class Phase:
    attack: Attack
    sent: int = 0
    notes: str = ""  # what the attacker reported besides its count
    latencies: list[float] = field(default_factory=list)  # ms, of legitimate requests
    outcomes: Counter[str] = field(default_factory=Counter)  # correct, wrong, <status>, error
    # legitimate JWT users asking for someone else's playlist: 403 is signed in
    jwt_new: Counter[str] = field(default_factory=Counter)
    jwt_returning: Counter[str] = field(default_factory=Counter)
    web_new: Counter[str] = field(default_factory=Counter)  # did:web users, likewise
    web_returning: Counter[str] = field(default_factory=Counter)
    misses: Counter[str] = field(default_factory=Counter)  # by the answer's source
    miss_latencies: list[float] = field(default_factory=list)  # ms
    redis_bytes: int = 0  # used_memory growth over the phase
    threads: int = 0  # the server's, at most, during the phase
    sockets: int = 0  # the server's open sockets, at most
    plc_fetches: int = 0
    dns_queries: int = 0
    pds_requests: int = 0  # to the hostile and the hanging PDS
    seconds: float = 0.0
    # p99 of a quiet window of the same length just before: this machine's load drifts
    # between phases, so each attack is held to its own neighbour
    quiet_p99: float = 0.0

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 0.99)

    def problems(self) -> list[str]:
        """what is wrong with this phase (empty: the verdict is ok)."""
        found = []
        if set(self.outcomes) != {"correct"}:
            found.append("owners")
        for label, outcomes in (
            ("JWT new", self.jwt_new),
            ("JWT back", self.jwt_returning),
            ("did:web new", self.web_new),
            ("did:web back", self.web_returning),
        ):
            if set(outcomes) != {"signed in"}:
                found.append(label)
        if set(self.misses) != {MISS_OK}:
            found.append("misses")
        bound = pds_bound(self.attack.run.__name__, self.seconds)
        if self.pds_requests > bound:
            found.append(f"PDS requests > {bound}")
        limit = redis_bound(self.attack.run.__name__, self.sent)
        if limit is not None and self.redis_bytes > limit:
            found.append(f"Redis > {limit / 1e6:.1f} MB")
        return found


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else 0.0


def pds_bound(attack: str, seconds: float) -> int:
    """requests the hostile and hanging PDSes may see in a phase: each refused record
    once per backoff; a hanging host its 8 waiting misses, then a probe per backoff."""
    rounds = 1 + int(seconds // FIRST_BACKOFF_SECONDS)
    if attack == "hostile_pds":
        return len(HOSTILE_KINDS) * rounds
    if attack == "hanging_pds":
        return MAX_COMPUTES_PER_PDS_HOST + rounds
    return 0


def redis_bound(attack: str, sent: int) -> int | None:
    """Redis growth allowed by the flood control's byte bounds (README, 'Redis bytes'):
    one DID's pending bytes, or all DIDs' together, x4, plus 4 KiB a task."""
    limits = FloodLimits()
    if attack == "redis_flood":
        return REDIS_FACTOR * limits.max_pending_bytes + TASK_SLACK_BYTES * limits.max_pending
    if attack == "many_dids_flood":
        return REDIS_FACTOR * limits.max_total_pending_bytes + TASK_SLACK_BYTES * sent
    return None
