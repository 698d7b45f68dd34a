"""the matrix a playlist's embeddings become: usable rows, sorted by track id,
unit length, only a hashed sample of them above the k-means sample size.

this runs on every recommendation with up to 500 vectors in hand, so it reads
as little as it can: above the sample size only the sampled vectors are
touched at all (the ids are hashed and partitioned as one array), and the
common case (every sampled vector 1-d, one length, finite, already unit
length) costs one concatenation and one pass for the norms.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engine.kmeans import Matrix
from engine.types import Vector

NORM_FLOOR = 1e-12
_UNIT_TOLERANCE = 1e-4
_FIBONACCI = 0x9E3779B97F4A7C15  # 2^64 / golden ratio: the usual multiplicative hash


@dataclass(frozen=True, slots=True)
class Sample:
    """the rows the strategy works on: ids (sorted), unit rows, and N.

    `squared_norms` are `np.einsum("ij,ij->i", matrix, matrix)` when the rows
    were unit length already (so k-means need not compute them again), else None.
    """

    ids: list[int]
    matrix: Matrix
    embedded_count: int
    squared_norms: npt.NDArray[np.float32] | None = None


NO_SAMPLE = Sample([], np.zeros((0, 0), dtype=np.float32), 0)


def usable_vectors(vectors_by_id: Mapping[int, Vector]) -> tuple[list[int], Matrix]:
    """ids (sorted) and unit-normalised rows of the usable embeddings.

    the dimension is the one most vectors have; vectors of another shape, zero
    vectors and non-finite ones are left out.
    """
    sample = sample_vectors(vectors_by_id, None)
    return sample.ids, sample.matrix


def sample_vectors(vectors_by_id: Mapping[int, Vector], sample_size: int | None) -> Sample:
    """the usable embeddings (see `usable_vectors`), only `sample_size` of them when
    there are more, drawn with a seed of the set of ids (deterministic per set).

    above the sample size only the sampled vectors are read at all: assembling and
    checking 500 x 512 floats cost more than everything else the engine does
    (`python -m bench engine`), and k-means trained on a sample already. N then
    counts the vectors given less the unusable ones (wrong shape, zero, non-finite)
    found in the sample; one outside it is never read, so it cannot harm a centroid.
    """
    if not vectors_by_id:
        return NO_SAMPLE
    total = len(vectors_by_id)
    ids = sampled_ids(vectors_by_id, sample_size)
    rows = [vectors_by_id[t] for t in ids]
    flat = _concatenated(rows)
    if flat is None:  # rare: other shapes among the vectors; keep the majority's
        every = sorted(vectors_by_id)
        shape = Counter(np.shape(vectors_by_id[t]) for t in every).most_common(1)[0][0]
        if len(shape) != 1:
            return NO_SAMPLE
        kept = {t: vectors_by_id[t] for t in every if np.shape(vectors_by_id[t]) == shape}
        total = len(kept)
        ids = sampled_ids(kept, sample_size)
        rows = [kept[t] for t in ids]
        flat = np.concatenate(rows)
    matrix: Matrix = flat.astype(np.float32, copy=False).reshape(len(ids), len(rows[0]))
    with np.errstate(invalid="ignore", over="ignore"):
        squared = np.einsum("ij,ij->i", matrix, matrix)
    # CLAP embeddings usually arrive unit-length: nothing to drop or divide then
    # (a NaN fails the comparison, so a non-finite row takes the long way)
    if np.abs(squared - 1.0).max() <= _UNIT_TOLERANCE:
        return Sample(ids, matrix, total, squared)
    norms = np.sqrt(squared)
    keep = np.isfinite(norms) & (norms > NORM_FLOOR)
    unusable = 0
    if not keep.all():
        unusable = int(len(ids) - keep.sum())
        ids = [t for t, usable in zip(ids, keep.tolist(), strict=True) if usable]
        matrix, norms, squared = matrix[keep], norms[keep], squared[keep]
    if np.abs(norms - 1.0).max(initial=0.0) > _UNIT_TOLERANCE:
        return Sample(ids, matrix / norms[:, None], total - unusable)
    return Sample(ids, matrix, total - unusable, squared)


def sampled_ids(vectors_by_id: Mapping[int, Vector], sample_size: int | None) -> list[int]:
    """`sample_size` of the ids (all of them when there are no more), sorted: those
    whose ids hash lowest.

    a multiplicative (Fibonacci) hash of each id scatters any regularity of the
    ids (evenly spaced rows aliased with ids that cycle through moods, as the
    tests' vectors do), depends on the set alone (the hash is a bijection of
    64-bit integers: no ties, whatever order the ids come in), and costs a few
    array operations where drawing from a seeded generator cost ~0.1 ms.
    """
    total = len(vectors_by_id)
    if sample_size is None or total <= sample_size:
        return sorted(vectors_by_id)
    ids = np.fromiter(vectors_by_id, dtype=np.int64, count=total)
    keys = ids.view(np.uint64) * np.uint64(_FIBONACCI)
    lowest = np.argpartition(keys, sample_size - 1)[:sample_size]
    chosen: list[int] = np.sort(ids[lowest]).tolist()
    return chosen


def _concatenated(rows: list[Vector]) -> npt.NDArray[np.generic] | None:
    """the rows as one flat array when they are all 1-d of one length, else None.

    rows that are all native float32 arrays of one 1-d shape (what the stores
    hand over) are joined as bytes: np.concatenate's per-array conversion cost
    ~3x more on 128 rows (`python -m bench engine`). the array is then read-only
    (nothing downstream writes into the playlist's rows). anything else goes
    through one np.concatenate, which refuses mixed ranks; equal len() + rank 1
    + the total size pin every shape.
    """
    try:
        kinds = {(row.dtype, row.shape) for row in rows}
    except AttributeError:  # not arrays: np.concatenate decides
        kinds = set()
    if len(kinds) == 1:
        dtype, shape = next(iter(kinds))
        if dtype == _FLOAT32 and len(shape) == 1:
            try:
                return np.frombuffer(b"".join(rows), dtype=np.float32)  # type: ignore[arg-type]
            except (BufferError, TypeError, ValueError):  # not contiguous: copy below
                pass
    try:
        if len(set(map(len, rows))) != 1 or np.ndim(rows[0]) != 1:
            return None
        flat = np.concatenate(rows)
    except (TypeError, ValueError):  # a 0-d vector (no len) or mixed ranks
        return None
    if flat.ndim != 1 or flat.size != len(rows) * len(rows[0]):
        return None
    return flat


_FLOAT32 = np.dtype(np.float32)
