"""turning accepted playlist changes into docket tasks for the worker.

the docket call pattern (the contract with `worker.tasks.playlist`):

- create/update -> `replace(recompute_playlist, when=now + debounce,
  key=recompute_key(uri))(uri, cid, rev, track_uris)`. one key per playlist and
  `replace`, not docket's `Debounce`: `Debounce` keeps the *first* arguments of a
  burst, we need the newest state, so every edit overwrites the pending one and
  pushes its start out by the settle delay.
- delete -> `cancel(recompute_key(uri))`, then `replace(forget_playlist,
  when=now, key=forget_key(uri))(uri)`. the cancel comes first so a recompute of
  a deleted playlist can never be left pending behind its forget.

each task's start also passes the per-DID flood control (`jetstream.flood`):
a DID past its pace gets its tasks deferred, or past its cap of pending tasks
or of bytes held in Redis shed (a shed delete still cancels the pending
recompute); both are reported. a task's bytes are held under its docket key
until docket no longer keeps it (`jetstream.task_records`).

ordering is kept exactly: consecutive replaces travel together in one
`replace_many` pipeline (per-key replaces inside it still apply in order), and
a delete's cancel is a barrier between two pipelines. so create -> delete ->
re-create inside one batch ends with the re-created state pending and the
forget scheduled before it (it runs now, the recompute after the settle delay).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from docket import Disposition, Docket, TaskCall
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from engine.errors import TransientError
from jetstream.contract import (
    FORGET_TASK,
    RECOMPUTE_TASK,
    TaskFunctions,
    forget_key,
    recompute_key,
)
from jetstream.events import ListChange, ListCommit
from jetstream.flood import Admission, FloodControl, task_bytes

# a no-op tracer unless the process installed a provider (worker.ops.tracing)
_TRACER = trace.get_tracer("plyr-recs.jetstream")

RECOMPUTE = RECOMPUTE_TASK
FORGET = FORGET_TASK


class EnqueueFailed(TransientError):
    """docket did not take a task; the batch is not done and must be replayed."""


@dataclass(frozen=True, slots=True)
class Enqueued:
    """one task handed to docket, as observers (tests, the embedded mode's log) see it."""

    task: Literal["recompute", "forget"]
    playlist_uri: str
    rev: str
    time_us: int
    cid: str | None = None
    track_uris: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EnqueueReport:
    enqueued: list[Enqueued]
    struck: int
    deferred: int = 0  # enqueued, but later than the settle delay (a DID past its pace)
    shed: int = 0  # not enqueued: the DID already holds its cap of pending tasks


class TaskSink(Protocol):
    """what the batch processor hands accepted changes to (`Enqueuer`, or a
    benchmark's baseline)."""

    async def enqueue(self, changes: Sequence[ListChange]) -> EnqueueReport: ...


class Enqueuer:
    """schedules the worker's tasks for a batch of accepted changes, in order."""

    def __init__(
        self,
        docket: Docket,
        *,
        tasks: TaskFunctions,
        debounce_seconds: float,
        clock: Callable[[], float] = time.time,
        flood: FloodControl | None = None,
    ) -> None:
        self._docket = docket
        self._debounce_seconds = debounce_seconds
        self._clock = clock
        self._flood = flood
        # registered once, then scheduled by name: `docket.call(function)` would
        # re-validate the function's dependencies on every call, a measurable
        # share of the enqueue cost at thousands of changes per second.
        for task in (tasks.recompute, tasks.forget):
            docket.register(task)

    async def enqueue(self, changes: Sequence[ListChange]) -> EnqueueReport:
        """schedule every change; raises `EnqueueFailed` (or the Redis error) if any
        schedule did not land, in which case the caller must not move its cursor."""
        now = self._clock()
        enqueued: list[Enqueued] = []
        struck = deferred = shed = 0
        calls: list[TaskCall] = []
        pending: list[Enqueued] = []

        async def send_pending() -> None:
            nonlocal struck
            if not calls:
                return
            # the span docket's tasks link to (through the trace context each one
            # carries): one recompute's trace goes from here into the worker
            with _TRACER.start_as_current_span(
                "jetstream.enqueue",
                kind=SpanKind.PRODUCER,
                attributes={"plyr.tasks": len(calls), "plyr.playlist_uri": pending[0].playlist_uri},
            ):
                executions = await self._docket.replace_many(calls)
            for execution, record in zip(executions, pending, strict=True):
                if execution.disposition is Disposition.FAILED:
                    raise EnqueueFailed(
                        f"docket refused {execution.key}: {execution.schedule_exception!r}"
                    ) from execution.schedule_exception
                if execution.disposition is Disposition.STRUCK:
                    struck += 1  # an operator's strike is a decision, not a fault
                else:
                    enqueued.append(record)
            calls.clear()
            pending.clear()

        for change in changes:
            uri = change.playlist_uri
            is_commit = isinstance(change, ListCommit)
            held = self._flood is not None and self._flood.holds(change.did, uri, now=now)
            admission = self._admit(change, now, self._debounce_seconds if is_commit else 0.0)
            if admission is None:
                shed += 1
                if not is_commit or held:
                    # no forget, but never a recompute left pending behind a delete;
                    # nor one of an older state than the record holds now.
                    await send_pending()
                    await self._docket.cancel(recompute_key(uri))
                continue
            deferred += admission.deferred
            when = datetime.fromtimestamp(admission.when, UTC)
            if isinstance(change, ListCommit):
                track_uris = list(change.track_uris)
                calls.append(
                    self._docket.call(RECOMPUTE, when, recompute_key(uri))(
                        uri, change.cid, change.rev, track_uris
                    )
                )
                pending.append(
                    Enqueued(
                        "recompute", uri, change.rev, change.time_us, change.cid, change.track_uris
                    )
                )
            else:
                await send_pending()
                await self._docket.cancel(recompute_key(uri))
                calls.append(self._docket.call(FORGET, when, forget_key(uri))(uri, change.rev))
                pending.append(Enqueued("forget", uri, change.rev, change.time_us))
        await send_pending()
        return EnqueueReport(enqueued, struck, deferred, shed)

    def _admit(self, change: ListChange, now: float, settle: float) -> Admission | None:
        if self._flood is None:
            return Admission(now + settle, deferred=False)
        uri = change.playlist_uri
        if isinstance(change, ListCommit):
            strings: tuple[str, ...] = (change.cid or "", change.rev, *change.track_uris)
            key = recompute_key(uri)
        else:
            strings, key = (change.rev,), forget_key(uri)
        # the bytes are held under the docket key until that task is gone (jetstream.flood)
        return self._flood.admit(
            change.did, uri, now=now, settle=settle, size=task_bytes(uri, strings), task_key=key
        )
