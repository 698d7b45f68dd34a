"""the API's speculative work: after an answer is served to a playlist's owner, the
answers of the playlist plus each track it showed are computed in the background
(`Recommender.speculate`), so the refetch right after "+" is already computed.

bounded so it never costs a real request anything: one speculative compute at a
time per process, and only while no inline compute (a real miss) runs; at most
`max_pending` playlists waiting (one pending job per playlist: a newer answer
replaces the older's); at most `per_answer` tracks (3: what the editor shows);
a (playlist, version, shown tracks) done recently is not done again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from typing import Final

from engine.ports import CatalogError, VectorStoreError
from jetstream.faults import REDIS_UNAVAILABLE
from worker.recs.recommender import Recommender
from worker.store.cache import RecommendationCache
from worker.store.store_budget import SpeculationDeferred, speculative_work

logger = logging.getLogger(__name__)

BUSY_POLL_SECONDS: Final = 0.05
BUSY_GIVE_UP_SECONDS: Final = 5.0  # a process that stays busy has no time for guesses


class Speculation:
    def __init__(
        self,
        *,
        cache: RecommendationCache,
        recommender: Recommender,
        busy: Callable[[], bool],
        max_pending: int = 32,
        per_answer: int = 3,
        remembered: int = 4096,
    ) -> None:
        self.cache = cache
        self.recommender = recommender
        self.busy = busy
        self.max_pending = max_pending
        self.per_answer = per_answer
        self.remembered = remembered
        self.counts: Counter[str] = Counter()
        # playlist id -> (its version token, the track ids shown), oldest first
        self._pending: OrderedDict[str, tuple[str, tuple[int, ...]]] = OrderedDict()
        self._done: OrderedDict[tuple[str, str, tuple[int, ...]], None] = OrderedDict()
        self._runner: asyncio.Task[None] | None = None

    def after_answer(self, playlist_id: str, token: str, shown: Sequence[int]) -> None:
        """note that an answer showing `shown` was served for this version (no I/O)."""
        job = (token, tuple(shown[: self.per_answer]))
        if not job[1] or (playlist_id, *job) in self._done:
            return
        if playlist_id not in self._pending and len(self._pending) >= self.max_pending:
            self.counts["dropped:full"] += 1
            return
        self._pending[playlist_id] = job
        self._pending.move_to_end(playlist_id)
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())

    async def drain(self) -> None:
        """wait for the pending work (tests, and a clean shutdown)."""
        while self._runner is not None and not self._runner.done():
            await asyncio.shield(self._runner)

    async def aclose(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)

    async def _run(self) -> None:
        while self._pending:
            playlist_id, (token, shown) = self._pending.popitem(last=False)
            if not await self._quiet():
                self.counts["dropped:busy"] += 1
                continue
            try:
                computed = await self._one(playlist_id, token, shown)
            except SpeculationDeferred:
                self.counts["deferred:budget"] += 1  # recomputes first: not guessed now
                continue
            except (*REDIS_UNAVAILABLE, VectorStoreError, CatalogError, TimeoutError) as error:
                self.counts["failed"] += 1
                logger.info("speculative answers of %s skipped: %s", playlist_id, error)
                continue
            except Exception:
                # a bug: counted and logged, and the loop goes on (guesses are optional)
                self.counts["failed:unexpected"] += 1
                logger.exception("speculative answers of %s failed", playlist_id)
                continue
            self.counts["computed"] += computed
            self._done[(playlist_id, token, shown)] = None
            while len(self._done) > self.remembered:
                self._done.popitem(last=False)

    async def _quiet(self) -> bool:
        """wait until no real miss is being computed here (at most a few seconds)."""
        waited = 0.0
        while self.busy():
            if waited >= BUSY_GIVE_UP_SECONDS:
                return False
            await asyncio.sleep(BUSY_POLL_SECONDS)
            waited += BUSY_POLL_SECONDS
        return True

    async def _one(self, playlist_id: str, token: str, shown: tuple[int, ...]) -> int:
        state = await self.cache.get_state(playlist_id)
        if state is None or state.token != token:
            self.counts["no_state"] += 1  # the tracks of this version are not known here
            return 0
        # nobody waits for these: only turbopuffer slots no recompute is asking for
        with speculative_work():
            return await self.recommender.speculate(
                playlist_id, state.track_uris, state.track_ids, shown
            )
