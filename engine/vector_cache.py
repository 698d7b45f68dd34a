"""a bounded in-process cache of track embeddings, in front of a vector store.

a track's CLAP embedding changes only with its audio, and the same tracks come
back again and again: a playlist is recomputed on every edit and on refresh, and
popular tracks sit in many playlists. so the id lookup (`get_vectors`) asks the
store only for the ids this process has not seen lately; the neighbour search
(`query_many`) always goes to the store, whose catalogue changes all the time.

the bound is on entries (least recently used out first): at 512 float32 a vector
is 2 KiB of data, so the default 20,000 hold 40 MiB of vectors, 45 MiB with
Python's per-entry objects (tracemalloc: 2,363 bytes an entry). an entry lives
`ttl_seconds` (10 minutes by default) from when it was fetched, however often it
is read, so a re-uploaded track's new embedding is served at most that long after
turbopuffer has it. ids without an embedding are not remembered: ingest may embed
them any moment.

the vectors handed out are read-only and shared between callers: one that wrote
into a playlist's rows would otherwise change them for everyone after it (the
engine never writes into them). the cache is guarded by a lock, not by the event
loop: the worker and the API may call one store from loops in different threads.
two recomputes missing the same ids at once both ask the store (no single flight:
the second fetch costs one lookup and is rare).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from engine.ports import VectorStore
from engine.types import Candidate, Vector

DEFAULT_MAX_VECTORS = 20_000
DEFAULT_TTL_SECONDS = 600.0


@dataclass
class VectorCacheStats:
    """what the cache answered itself and what it asked the store, for logs and tests."""

    hits: int = 0
    misses: int = 0  # ids asked of the store (expired entries included)
    expired: int = 0
    evicted: int = 0


class _Entry(NamedTuple):
    expires_at: float
    vector: Vector


class VectorCache:
    """`engine.ports.VectorStore` over another one, remembering recent embeddings."""

    def __init__(
        self,
        store: VectorStore,
        *,
        max_vectors: int = DEFAULT_MAX_VECTORS,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_vectors < 1:
            raise ValueError(f"max_vectors must be at least 1, got {max_vectors}")
        if not ttl_seconds > 0:
            raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds}")
        self.store = store
        self.max_vectors = max_vectors
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.stats = VectorCacheStats()

    def __len__(self) -> int:
        return len(self._entries)

    async def get_vectors(self, track_ids: Sequence[int]) -> dict[int, Vector]:
        """the cached vectors of `track_ids`, and the store's for the others."""
        wanted = list(dict.fromkeys(track_ids))
        if any(type(track_id) is not int for track_id in wanted):
            # numpy integers (ids out of arrays) are plain ids; anything else goes to
            # the store, which refuses it (a bool here: True == 1 would find track 1)
            if not all(isinstance(t, int | np.integer) and not isinstance(t, bool) for t in wanted):
                return await self.store.get_vectors(track_ids)
            wanted = list(dict.fromkeys(int(track_id) for track_id in wanted))
        found: dict[int, Vector] = {}
        missing: list[int] = []
        now = self._clock()
        with self._lock:
            entries = self._entries
            for track_id in wanted:
                entry = entries.get(track_id)
                if entry is None:
                    missing.append(track_id)
                elif entry.expires_at <= now:
                    del entries[track_id]
                    self.stats.expired += 1
                    missing.append(track_id)
                else:
                    entries.move_to_end(track_id)
                    found[track_id] = entry.vector
            self.stats.hits += len(found)
            self.stats.misses += len(missing)
        if not missing:
            return found
        fetched = await self.store.get_vectors(missing)
        kept = {track_id: _frozen(vector) for track_id, vector in fetched.items()}
        self._remember(kept, expires_at=now + self.ttl_seconds)
        found.update(kept)
        return found

    async def query_many(
        self,
        vectors: Sequence[Vector],
        *,
        top_k: int,
        exclude_ids: Iterable[int],
    ) -> list[list[Candidate]]:
        """the store's neighbours, never cached (its catalogue moves all the time)."""
        return await self.store.query_many(vectors, top_k=top_k, exclude_ids=exclude_ids)

    def forget(self) -> None:
        """drop every entry (a namespace rewritten under a running process)."""
        with self._lock:
            self._entries.clear()

    async def aclose(self) -> None:
        """close the store underneath, if it has anything to close."""
        closer = getattr(self.store, "aclose", None)
        if closer is not None:
            await closer()

    def _remember(self, vectors: dict[int, Vector], *, expires_at: float) -> None:
        with self._lock:
            entries = self._entries
            for track_id, vector in vectors.items():
                entries[track_id] = _Entry(expires_at, vector)
                entries.move_to_end(track_id)
            overflow = len(entries) - self.max_vectors
            for _ in range(max(overflow, 0)):
                entries.popitem(last=False)
            self.stats.evicted += max(overflow, 0)


def _frozen(vector: Vector) -> Vector:
    """`vector` as a read-only array nobody else can write through.

    turbopuffer's vectors are read-only views of their own bytes already (kept as
    they are); anything else (a writable array, a view of one) is copied first.
    """
    if not vector.flags.writeable and isinstance(vector.base, bytes):
        return vector
    frozen: Vector = np.array(vector, dtype=np.float32)
    frozen.flags.writeable = False
    return frozen
