"""cache reads that arrive together leave together: one MGET per event-loop turn.

under load most of a cache hit's cost is the Redis round trip itself: the
client library's bookkeeping and two system calls per command, on the API's
one core. requests that ask within the same turn of the event loop are
answered by a single MGET, so that cost is paid once per batch rather than
once per request; a lone request still sends one command and waits one turn
longer (microseconds). against a remote Redis it also saves round trips.

the values are read exactly as `RecommendationCache.get` reads them (an
unreadable entry is a miss and is counted); only the transport differs. a
`BatchRider` adds its own keys to every MGET and sees their values before the
readers do (the API's copy of the withdrawn set stays current that way).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Final, Protocol

from engine.cache import CachedRecommendations, cache_key
from worker.store.cache import RecommendationCache

logger = logging.getLogger(__name__)

MAX_KEYS_PER_MGET: Final = 128  # a batch past this is split, so one command stays small


class BatchRider(Protocol):
    """keys read with every batch, handed over before the batch's readers resume."""

    @property
    def keys(self) -> Sequence[str]: ...

    async def landed(self, values: Sequence[Any]) -> None: ...


class CoalescedReads:
    """`get(playlist_id, token)` like the cache's, batched across concurrent callers."""

    def __init__(
        self,
        cache: RecommendationCache,
        *,
        timeout_seconds: float,
        rider: BatchRider | None = None,
    ) -> None:
        self.cache = cache
        self.rider = rider
        self.timeout_seconds = timeout_seconds  # bounds one MGET; waiters bound themselves too
        self._waiting: dict[str, list[asyncio.Future[bytes | None]]] = {}
        self._flushes: set[asyncio.Task[None]] = set()
        self.batches = 0  # MGETs sent (how much coalescing happened, for tests and the bench)

    async def get(self, playlist_id: str, token: str) -> CachedRecommendations | None:
        return self.cache.decode_entry(playlist_id, await self._raw(cache_key(playlist_id, token)))

    async def aclose(self) -> None:
        for flush in list(self._flushes):
            flush.cancel()
        await asyncio.gather(*self._flushes, return_exceptions=True)

    def _raw(self, key: str) -> asyncio.Future[bytes | None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes | None] = loop.create_future()
        if not self._waiting:
            # the first read of this turn: the batch leaves once the turn is over
            loop.call_soon(self._flush_soon)
        self._waiting.setdefault(key, []).append(future)
        return future

    def _flush_soon(self) -> None:
        waiting, self._waiting = self._waiting, {}
        keys = list(waiting)
        for start in range(0, len(keys), MAX_KEYS_PER_MGET):
            batch = {key: waiting[key] for key in keys[start : start + MAX_KEYS_PER_MGET]}
            flush = asyncio.create_task(self._flush(batch))
            self._flushes.add(flush)
            flush.add_done_callback(self._flushes.discard)

    async def _flush(self, batch: dict[str, list[asyncio.Future[bytes | None]]]) -> None:
        self.batches += 1
        try:
            async with asyncio.timeout(self.timeout_seconds):
                riding = list(self.rider.keys) if self.rider is not None else []
                values: list[Any] = await self.cache.redis.mget([*batch, *riding])
                if self.rider is not None:
                    await self.rider.landed(values[len(batch) :])
                    values = values[: len(batch)]
        except Exception as error:  # handed to every waiter, which decides (retry or fail)
            for futures in batch.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(error)
            return
        except asyncio.CancelledError:
            for futures in batch.values():
                for future in futures:
                    future.cancel()
            raise
        for value, futures in zip(values, batch.values(), strict=True):
            for future in futures:
                if not future.done():  # its request may have given up already
                    future.set_result(value)
