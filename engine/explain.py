"""why each track is recommended: the playlist track that explains it.

a recommendation came from one of the plan's query vectors, the one it is
closest to (its lowest distance across the ranked lists). what that query
vector stands for in the playlist is the explanation:

- 1 to 5 tracks: each query vector *is* a playlist track's embedding, so the
  explanation is exactly the playlist track the recommendation is nearest to;
- 6 or more: a query vector is a mood's centroid, and its explanation is the
  playlist track that best stands for that mood (the one most alike the
  centroid). the track truly nearest to the recommendation would need its
  embedding, one more vector-store read per recompute for a line of text; the
  mood's representative needs nothing the engine does not hold already.

pure functions over what `recommend` has in hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet

import numpy as np

from engine.kmeans import Matrix
from engine.types import Candidate, Vector


def representatives(ids: Sequence[int], matrix: Matrix, queries: Sequence[Vector]) -> list[int]:
    """for each query vector, the track of `ids` (rows of `matrix`, unit length: the
    sample the plan was made from) most alike it; the first row wins a tie."""
    if not queries or not ids:
        return []
    similarity = matrix @ np.stack(queries).T  # tracks x queries
    return [ids[int(row)] for row in np.argmax(similarity, axis=0)]


def nearest_query(
    ranked_lists: Sequence[Sequence[Candidate]], track_ids: AbstractSet[int]
) -> dict[int, int]:
    """for each of `track_ids` that a list holds: the index of the query it is closest
    to (its lowest distance; the first list on a tie). only the answer's tracks are
    asked about (35 of 3 x 115 candidates): a look at each candidate's id, the rest
    of the work for those alone."""
    best: dict[int, tuple[float, int]] = {}
    for index, candidates in enumerate(ranked_lists):
        for candidate in candidates:
            track_id = candidate.track_id
            if track_id not in track_ids:
                continue
            seen = best.get(track_id)
            if seen is None or candidate.distance < seen[0]:
                best[track_id] = (candidate.distance, index)
    return {track_id: index for track_id, (_, index) in best.items()}
