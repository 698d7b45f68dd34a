"""how long to wait before the next connection attempt: jittered exponential backoff.

a policy as a small callable (as `websockets` does it), so tests and the
benchmark can inject a fast one. jitter keeps a fleet of restarted consumers,
or one consumer bouncing between hosts, from hammering in lockstep.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

# a fresh delay sequence per failure streak; the consumer restarts it after a
# connection that did useful work.
Backoff = Callable[[], Iterator[float]]


def jittered_backoff(
    base_seconds: float, cap_seconds: float, *, rng: random.Random | None = None
) -> Backoff:
    """delays of base·2^n capped at `cap_seconds`, each scaled by a random factor in
    [0.5, 1): never zero (a refused host is not retried in a tight loop), never
    more than the cap."""
    chooser = rng or random.Random()

    def delays() -> Iterator[float]:
        ceiling = base_seconds
        while True:
            yield min(ceiling, cap_seconds) * chooser.uniform(0.5, 1.0)
            ceiling = min(ceiling * 2, cap_seconds)

    return delays
