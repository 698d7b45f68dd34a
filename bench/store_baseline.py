"""the turbopuffer adapter's previous ways, kept callable for `python -m bench store`.

both calls through the client's typed methods (`namespace.query`, `namespace.
multi_query`): the client walks every request body (its transform) and builds a
pydantic model per answer row; each vector is then decoded and checked on its own
(`vector_encoding="base64"`, or JSON floats when `encoding` is "float", what
turbopuffer sends by default). only the happy path: errors are the real adapter's
business, this only has to cost what the old one cost.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np
import turbopuffer
from turbopuffer.types import namespace_multi_query_params

from engine.candidate_rows import _row_by_row
from engine.turbopuffer_store import TurbopufferStore
from engine.types import Candidate, Vector

Encoding = Literal["float", "base64"]


class ClientModelsStore:
    """a VectorStore over the client's typed methods and models (the previous adapter)."""

    def __init__(self, client: turbopuffer.AsyncTurbopuffer, namespace: str, encoding: Encoding):
        self.namespace = client.namespace(namespace)
        self.encoding: Encoding = encoding

    async def get_vectors(self, track_ids: Sequence[int]) -> dict[int, Vector]:
        wanted = list(dict.fromkeys(int(track_id) for track_id in track_ids))
        response = await self.namespace.query(
            rank_by=("id", "asc"),
            filters=("id", "In", wanted),
            include_attributes=["vector"],
            top_k=len(wanted),
            vector_encoding=self.encoding,
        )
        asked = set(wanted)
        vectors: dict[int, Vector] = {}
        for row in response.rows or []:
            track_id = getattr(row, "id", None)
            vector = _decode_vector(getattr(row, "vector", None), 512)
            if isinstance(track_id, int) and track_id in asked and vector is not None:
                vectors[track_id] = vector
        return vectors

    async def query_many(
        self, vectors: Sequence[Vector], *, top_k: int, exclude_ids: Iterable[int]
    ) -> list[list[Candidate]]:
        excluded = sorted({int(track_id) for track_id in exclude_ids})
        queries: list[namespace_multi_query_params.Query] = [
            {
                "rank_by": ("vector", "ANN", [float(x) for x in np.asarray(v, np.float32)]),
                "top_k": top_k,
                "distance_metric": "cosine_distance",
                "filters": ("id", "NotIn", excluded),
            }
            for v in vectors
        ]
        response = await self.namespace.multi_query(queries=queries)
        excluded_set = set(excluded)
        results = []
        for answer in response.results:
            candidates = []
            for row in answer.rows or []:
                track_id = getattr(row, "id", None)
                distance = (getattr(row, "model_extra", None) or {}).get("$dist")
                if (
                    isinstance(track_id, int)
                    and track_id not in excluded_set
                    and isinstance(distance, int | float)
                    and math.isfinite(distance)
                ):
                    candidates.append(Candidate(track_id, float(distance)))
            results.append(candidates[:top_k])
        return results


def _decode_vector(raw: Any, dimensions: int) -> Vector | None:
    if isinstance(raw, str):
        packed = base64.b64decode(raw, validate=True)
        if len(packed) != dimensions * 4:
            return None
        array = np.frombuffer(packed, dtype="<f4")
    elif isinstance(raw, list) and len(raw) == dimensions:
        array = np.asarray(raw, dtype=np.float32)
    else:
        return None
    if not np.isfinite(array).all() or not array.any():
        return None
    vector: Vector = array.astype(np.float32)
    return vector


class RowByRowStore(TurbopufferStore):
    """the adapter now, its answers' rows checked one by one in Python as before
    issue 20's fast path (`engine.candidate_rows._row_by_row`): what that path saves."""

    def _candidates(
        self, rows: list[Any], *, top_k: int, excluded: frozenset[int]
    ) -> list[Candidate]:
        candidates, _ = _row_by_row(rows, top_k=top_k, excluded=excluded)
        return candidates
