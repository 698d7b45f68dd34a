"""which tasks the flood control holds bytes for does docket still keep: the byte
bound of `jetstream.flood` kept until a task *finishes*, not until it falls due.

docket keeps a task's pickled arguments in Redis from its schedule until its run
record (`Docket.runs_key(key)`, docket's public name for it) expires,
`EXECUTION_TTL` after the task ended however it ended: completed, dropped by the
failure policy, given up after its retries, cancelled, or replaced and then
ended. the parked task and the stream entry are gone before the run record, so
"the run record exists" is exactly "its arguments may still be in Redis". a
retry (the wait for plyr.fm's ingest, a transient fault's backoff, a busy
lock) reschedules under the same key and keeps the record: the bytes stay held,
once.

- the check: every `CHECK_EVERY_SECONDS` at most, the held keys that fell due
  (`FloodControl.due_for_check`, at most `CHECK_AT_MOST`, the ones checked
  longest ago first) are looked up in one script call (`EXISTS` of each run
  record, one round trip), and those gone are released. it runs before a batch
  is admitted, so it costs nothing while no frames arrive, and a batch never
  waits on more than one check.
- a restart: before the first batch, every run record under the consumer's key
  families (`CONSUMER_KEY_PREFIXES`) is found with `SCAN` and its bytes held
  again (`TASK_OVERHEAD_BYTES` + its pickled arguments' length, the DID read
  from the key's URI), so tasks admitted by the previous process stay counted.
  tasks the reconcile loop scheduled under the consumer's recompute key are
  counted too: they are bytes in Redis all the same.

a Redis fault raises, like any fault of the batch: the batch is replayed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from docket import Docket

from jetstream.contract import CONSUMER_KEY_PREFIXES
from jetstream.flood import TASK_OVERHEAD_BYTES, FloodControl

CHECK_EVERY_SECONDS = 1.0
# keys looked up per check: one script call of this many EXISTS is well under a
# millisecond of Redis time; a backlog of held keys is cycled through, oldest first.
CHECK_AT_MOST = 5_000
SCAN_COUNT = 1_000

# one round trip for a batch of keys; docket's client protocol has no pipelined EXISTS
_EXISTS = (
    "local out = {} for i, key in ipairs(KEYS) do out[i] = redis.call('EXISTS', key) end return out"
)
_ARGUMENT_LENGTHS = (
    "local out = {} for i, key in ipairs(KEYS) do "
    "out[i] = redis.call('HSTRLEN', key, 'args') end return out"
)


def did_of(task_key: str) -> str | None:
    """the repo DID in a consumer task key (`recompute:at://<did>/...`), None if none."""
    _, _, uri = task_key.partition(":")
    if not uri.startswith("at://"):
        return None
    did = uri[len("at://") :].split("/", 1)[0]
    return did or None


class TaskRecords:
    """releases the flood control's bytes of tasks docket no longer keeps (see the module doc)."""

    def __init__(
        self,
        docket: Docket,
        flood: FloodControl,
        *,
        clock: Callable[[], float] = time.time,
        check_every: float = CHECK_EVERY_SECONDS,
        check_at_most: int = CHECK_AT_MOST,
    ) -> None:
        self._docket = docket
        self._flood = flood
        self._clock = clock
        self._check_every = check_every
        self._check_at_most = check_at_most
        self._restored = False
        self._next_check = 0.0  # monotonic: the injected clock may stand still in tests
        self.released = 0  # tasks found gone since start
        self.restored = 0  # tasks found held at start

    async def refresh(self) -> None:
        """before a batch: hold again what a previous run left (once), then release
        what has finished (at most every `check_every` seconds)."""
        if not self._restored:
            await self._restore()
            self._restored = True
        if time.monotonic() < self._next_check:
            return
        self._next_check = time.monotonic() + self._check_every
        await self.check()

    async def check(self) -> int:
        """one check of the held tasks that fell due; the bytes released."""
        candidates = self._flood.due_for_check(self._clock(), self._check_at_most)
        if not candidates:
            return 0
        runs = [self._docket.runs_key(key) for key, _ in candidates]
        exists = await self._script(_EXISTS, runs)
        gone = [candidate for candidate, alive in zip(candidates, exists, strict=True) if not alive]
        self.released += len(gone)
        return self._flood.release(gone)

    async def _restore(self) -> None:
        now = self._clock()
        runs_prefix = self._docket.runs_key("")
        for prefix in CONSUMER_KEY_PREFIXES:
            keys: list[str] = []
            async with self._docket.redis() as redis:
                async for raw in redis.scan_iter(match=f"{runs_prefix}{prefix}*", count=SCAN_COUNT):
                    keys.append(raw.decode() if isinstance(raw, bytes) else str(raw))
            for start in range(0, len(keys), self._check_at_most):
                page = keys[start : start + self._check_at_most]
                lengths = await self._script(_ARGUMENT_LENGTHS, page)
                for run_key, length in zip(page, lengths, strict=True):
                    task_key = run_key[len(runs_prefix) :]
                    did = did_of(task_key)
                    if did is None or not length:
                        continue  # not one of ours, or expired between the scan and now
                    self._flood.restore(did, task_key, TASK_OVERHEAD_BYTES + int(length), now=now)
                    self.restored += 1

    async def _script(self, script: str, keys: list[str]) -> list[int]:
        async with self._docket.redis() as redis, redis.pipeline(transaction=False) as pipeline:
            pipeline.eval(script, len(keys), *keys)
            (result,) = await pipeline.execute()
        return [int(value) for value in result]
