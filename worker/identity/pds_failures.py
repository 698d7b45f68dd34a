"""the PDS client's memory of failing hosts and records (the policy: `pds_backoff`).

one memory per client, so the API's inline reads and a reconcile pass sharing
a client share it. keys are a host (`host:port`) or a record URI (with its
version, when the caller named one: an edited record is a new key). while a key's
backoff runs, `refusal` names why it is refused; once it has passed, one
request at a time goes through as a probe (the others are still refused, so a
host that hangs holds one slot per backoff, not one per request); a success
forgets the key, a failure doubles its backoff.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from worker.identity.pds_backoff import Backoff, Scope


@dataclass(slots=True)
class _Failing:
    reason: str  # the last failure's word (for logs and `reasons`)
    failures: int  # in a row
    until: float  # clock time the backoff ends
    probing: bool = False  # a request is in flight after the backoff ended


class FailureMemory:
    """failing keys with their backoff; at most `backoff.max_remembered` of them."""

    def __init__(self, backoff: Backoff, clock: Callable[[], float] = time.monotonic) -> None:
        self.backoff = backoff
        self._clock = clock
        # in the order of their last failure, so the oldest is forgotten first
        self._failing: OrderedDict[str, _Failing] = OrderedDict()

    def __len__(self) -> int:
        return len(self._failing)

    def failing(self, key: str) -> str | None:
        """the last failure's word if `key` is refused now, without taking a probe."""
        entry = self._failing.get(key)
        if entry is None or (entry.until <= self._clock() and not entry.probing):
            return None
        return entry.reason

    def admit(self, key: str) -> bool:
        """may a request for `key` go now? (True takes the probe of an expired backoff:
        the caller must then report `succeeded` or `failed`, or `released` if neither.)"""
        entry = self._failing.get(key)
        if entry is None:
            return True
        if entry.probing or entry.until > self._clock():
            return False
        entry.probing = True
        return True

    def succeeded(self, key: str) -> None:
        self._failing.pop(key, None)

    def released(self, key: str) -> None:
        """the request that took the probe ended with neither verdict (cancelled)."""
        entry = self._failing.get(key)
        if entry is not None:
            entry.probing = False

    def failed(self, key: str, reason: str, scope: Scope = Scope.HOST) -> float:
        """remember a failure of `key` (a host, or a record); the seconds it is refused for."""
        entry = self._failing.pop(key, None)
        failures = 1 if entry is None else entry.failures + 1
        seconds = self.backoff.seconds(failures, scope)
        self._failing[key] = _Failing(reason, failures, self._clock() + seconds)
        while len(self._failing) > self.backoff.max_remembered:
            self._failing.popitem(last=False)
        return seconds
