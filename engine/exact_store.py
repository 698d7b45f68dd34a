"""`ExactStore`: exact cosine search over a NumPy matrix, in process.

the embedded mode's vector store and the tests' reference: brute force is
exact and, for tens of thousands of 512-dim tracks, a few milliseconds per
query on one core. it implements the same port as the turbopuffer adapter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from engine.types import Candidate, Vector


class ExactStore:
    """every track's unit-normalised embedding as one row of a float32 matrix."""

    def __init__(self, track_ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        ids = np.asarray(track_ids, dtype=np.int64)
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.ndim != 2 or ids.ndim != 1 or len(ids) != len(matrix):
            raise ValueError("ExactStore needs one id per row of a 2-d matrix")
        if len(np.unique(ids)) != len(ids):
            raise ValueError("ExactStore track ids must be unique")
        norms = np.linalg.norm(matrix, axis=1)
        usable = np.isfinite(norms) & (norms > 0)
        self._ids = ids[usable]
        self._matrix = np.ascontiguousarray(matrix[usable] / norms[usable, None])
        self._row_of = {int(track_id): row for row, track_id in enumerate(self._ids)}
        self.requests = 0  # calls served, for the embedded mode's live view and tests

    @classmethod
    def from_vectors(cls, vectors_by_id: Mapping[int, Vector], dim: int = 512) -> ExactStore:
        ids = list(vectors_by_id)
        matrix = np.asarray([vectors_by_id[t] for t in ids], dtype=np.float32)
        return cls(ids, matrix.reshape(len(ids), dim) if ids else np.zeros((0, dim), np.float32))

    @classmethod
    def load(cls, path: Path) -> ExactStore:
        """a store saved by `save` (an .npz with `track_ids` and `vectors`)."""
        with np.load(path, allow_pickle=False) as data:
            return cls(data["track_ids"], data["vectors"])

    def save(self, path: Path) -> None:
        with path.open("wb") as handle:
            np.savez(handle, track_ids=self._ids, vectors=self._matrix)

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def dimension(self) -> int:
        return int(self._matrix.shape[1])

    async def get_vectors(self, track_ids: Sequence[int]) -> dict[int, Vector]:
        self.requests += 1
        rows = {t: self._row_of[t] for t in track_ids if t in self._row_of}
        return {t: self._matrix[row].copy() for t, row in rows.items()}

    async def query_many(
        self, vectors: Sequence[Vector], *, top_k: int, exclude_ids: Iterable[int]
    ) -> list[list[Candidate]]:
        if top_k < 1:
            raise ValueError("top_k must be >= 1")
        self.requests += 1
        if not vectors or len(self._ids) == 0:
            return [[] for _ in vectors]
        queries = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1)
        norms = np.linalg.norm(queries, axis=1, keepdims=True)
        queries = (queries / np.where(norms > 0, norms, 1.0)).astype(np.float32, copy=False)
        similarities = queries @ self._matrix.T  # (queries, tracks)
        excluded = [self._row_of[t] for t in exclude_ids if t in self._row_of]
        similarities[:, excluded] = -np.inf
        available = len(self._ids) - len(excluded)
        k = min(top_k, available)
        if k <= 0:
            return [[] for _ in vectors]
        results: list[list[Candidate]] = []
        for row in similarities:
            top = np.argpartition(-row, k - 1)[:k]
            # best first; equal similarity falls back to the smaller track id
            order = top[np.lexsort((self._ids[top], -row[top]))]
            results.append([Candidate(int(self._ids[i]), float(1.0 - row[i])) for i in order])
        return results
