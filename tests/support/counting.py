"""a VectorStore wrapper that counts calls (for "how many requests per recompute")."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from engine.ports import VectorStore
from engine.types import Candidate, Vector


@dataclass
class CountingStore:
    inner: VectorStore
    calls: list[str] = field(default_factory=list)
    query_batches: list[int] = field(default_factory=list)  # query vectors per query_many

    async def get_vectors(self, track_ids: Sequence[int]) -> dict[int, Vector]:
        self.calls.append("get_vectors")
        return await self.inner.get_vectors(track_ids)

    async def query_many(
        self, vectors: Sequence[Vector], *, top_k: int, exclude_ids: Iterable[int]
    ) -> list[list[Candidate]]:
        self.calls.append("query_many")
        self.query_batches.append(len(vectors))
        return await self.inner.query_many(vectors, top_k=top_k, exclude_ids=exclude_ids)
