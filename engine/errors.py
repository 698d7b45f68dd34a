"""one error hierarchy for the whole service, and one classifier over it.

every fault a part can meet is one of two kinds, and the kind decides what to
do with it:

- `TransientError`: worth trying again later (a dependency down, restarting,
  rate-limiting or slow). tasks retry with backoff; the consumer backs off and
  reconnects; the API degrades.
- `PermanentError`: trying again cannot help (input that breaks a bound, a
  request the dependency refuses, a malformed answer). tasks log it and drop the
  work on purpose.

adapters translate their library's errors into these (the PostgreSQL catalog,
the turbopuffer store); where a part talks to a client library directly (Redis,
everywhere), the classifier is extended with that library's types once
(`jetstream.faults`). anything else is a bug: it is neither retried nor counted
as a deliberate drop, and surfaces as the error it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class TransientError(Exception):
    """worth retrying later: the fault is in a dependency's current state, not the input."""


class PermanentError(Exception):
    """retrying cannot help: the input or the request is wrong for good."""


class InvalidInputError(PermanentError, ValueError):
    """input from outside (a frame, a record, a task's arguments) that breaks a bound."""


class Fault(StrEnum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class FaultClassifier:
    """which exception types are which kind of fault (and so, what to do about them).

    the tuples serve `except` clauses directly (`except FAULTS.transient:`); the
    call classifies an error already caught, None meaning "a bug, not a fault"."""

    transient: tuple[type[BaseException], ...] = (TransientError,)
    permanent: tuple[type[BaseException], ...] = (PermanentError,)

    def __call__(self, error: BaseException) -> Fault | None:
        if isinstance(error, self.transient):
            return Fault.TRANSIENT
        if isinstance(error, self.permanent):
            return Fault.PERMANENT
        return None

    def extended(
        self,
        *,
        transient: tuple[type[BaseException], ...] = (),
        permanent: tuple[type[BaseException], ...] = (),
    ) -> FaultClassifier:
        """this classifier, plus a client library's own types of each kind."""
        return FaultClassifier(self.transient + transient, self.permanent + permanent)


# the engine's own kinds; `jetstream.faults.FAULTS` adds Redis' and is what the
# service's parts decide by.
ENGINE_FAULTS = FaultClassifier()
