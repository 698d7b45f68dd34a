"""the demo catalogue as plain arrays: what is generated, cached on disk and validated.

the disk cache is a file anyone (or a crash half-way through a write) could
have damaged, so reading it back goes through `CatalogueColumns.from_arrays`,
which checks every array's presence, type, shape and range before a single
row is built from it. any inconsistency is a ValueError naming what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Final

import numpy as np
import numpy.typing as npt

# bump when the generator's output or the file layout changes: old caches are then
# ignored by name rather than read and found wrong
FORMAT_VERSION: Final = 2
MAX_TRACKS: Final = 2_000_000
MAX_ARTISTS: Final = 100_000
MAX_DIM: Final = 4096
# case codes run 0..10 (catalogue.TrackCase); checked here without importing it
MAX_TRACK_CASE: Final = 10
# a unit vector stored as float32 has a norm within this of 1
NORM_TOLERANCE: Final = 1e-3


@dataclass(frozen=True, slots=True)
class CatalogueParams:
    """what a catalogue is generated from; the same params always give the same catalogue."""

    tracks: int = 20_000
    artists: int = 300
    regions: int = 24
    dim: int = 512
    seed: int = 0

    def __post_init__(self) -> None:
        if not 100 <= self.tracks <= MAX_TRACKS:
            raise ValueError(f"tracks must be within 100..{MAX_TRACKS}, got {self.tracks}")
        if not 4 <= self.artists <= min(MAX_ARTISTS, self.tracks):
            raise ValueError(f"artists must be within 4..min({MAX_ARTISTS}, tracks)")
        if not 1 <= self.regions <= min(1024, self.tracks // 10):
            raise ValueError("regions must be within 1..min(1024, tracks / 10)")
        if not 8 <= self.dim <= MAX_DIM:
            raise ValueError(f"dim must be within 8..{MAX_DIM}, got {self.dim}")
        if not 0 <= self.seed < 2**32:
            raise ValueError("seed must be a 32-bit unsigned integer")

    @property
    def cache_key(self) -> str:
        """names the cache file: every parameter and the format version."""
        return (
            f"v{FORMAT_VERSION}-{self.tracks}t-{self.artists}a-{self.regions}r"
            f"-{self.dim}d-seed{self.seed}"
        )


@dataclass(frozen=True, eq=False)
class CatalogueColumns:
    """one array per column; track arrays have one entry per track, artist arrays one
    per artist. `track_artists` indexes the artist arrays."""

    params: CatalogueParams
    vectors: npt.NDArray[np.float32]  # (tracks, dim), unit rows
    track_ids: npt.NDArray[np.int64]
    regions: npt.NDArray[np.int16]
    track_artists: npt.NDArray[np.int32]
    track_rkeys: npt.NDArray[np.str_]
    track_titles: npt.NDArray[np.str_]
    track_cids: npt.NDArray[np.str_]
    track_cases: npt.NDArray[np.int8]
    has_image: npt.NDArray[np.bool_]
    artist_dids: npt.NDArray[np.str_]
    artist_handles: npt.NDArray[np.str_]
    artist_names: npt.NDArray[np.str_]
    artist_deactivated: npt.NDArray[np.bool_]

    def as_arrays(self) -> dict[str, npt.NDArray[np.generic]]:
        """every column by name, plus the cache key, for `np.savez`."""
        arrays: dict[str, npt.NDArray[np.generic]] = {
            field.name: getattr(self, field.name)
            for field in fields(self)
            if field.name != "params"
        }
        arrays["cache_key"] = np.array(self.params.cache_key)
        return arrays

    @classmethod
    def from_arrays(
        cls, arrays: Mapping[str, npt.NDArray[np.generic]], params: CatalogueParams
    ) -> CatalogueColumns:
        """columns read back from a file, checked against `params`; ValueError if anything
        is missing, of the wrong kind or shape, or out of range."""
        key = _array(arrays, "cache_key", "U", ())
        if str(key) != params.cache_key:
            raise ValueError(f"made for {key}, wanted {params.cache_key}")
        tracks, artists = (params.tracks,), (params.artists,)
        columns = cls(
            params=params,
            vectors=_array(arrays, "vectors", "f", (params.tracks, params.dim)).astype(np.float32),
            track_ids=_array(arrays, "track_ids", "i", tracks).astype(np.int64),
            regions=_array(arrays, "regions", "i", tracks).astype(np.int16),
            track_artists=_array(arrays, "track_artists", "i", tracks).astype(np.int32),
            track_rkeys=_strings(arrays, "track_rkeys", tracks),
            track_titles=_strings(arrays, "track_titles", tracks),
            track_cids=_strings(arrays, "track_cids", tracks),
            track_cases=_array(arrays, "track_cases", "i", tracks).astype(np.int8),
            has_image=_flags(arrays, "has_image", tracks),
            artist_dids=_strings(arrays, "artist_dids", artists),
            artist_handles=_strings(arrays, "artist_handles", artists),
            artist_names=_strings(arrays, "artist_names", artists),
            artist_deactivated=_flags(arrays, "artist_deactivated", artists),
        )
        columns.check()
        return columns

    def check(self) -> None:
        """the cross-column rules a damaged file could break; ValueError on the first."""
        params = self.params
        if len(np.unique(self.track_ids)) != params.tracks:
            raise ValueError("track ids are not unique")
        if self.regions.min() < 0 or self.regions.max() >= params.regions:
            raise ValueError("a region index is out of range")
        if self.track_artists.min() < 0 or self.track_artists.max() >= params.artists:
            raise ValueError("a track's artist index is out of range")
        if self.track_cases.min() < 0 or self.track_cases.max() > MAX_TRACK_CASE:
            raise ValueError("a track case code is out of range")
        if len(np.unique(self.artist_dids)) != params.artists:
            raise ValueError("artist DIDs are not unique")
        if len(np.unique(self.track_rkeys)) != params.tracks:
            raise ValueError("track record keys are not unique")
        norms = np.linalg.norm(self.vectors, axis=1)
        if not np.all(np.abs(norms - 1.0) <= NORM_TOLERANCE):  # also false for NaN
            raise ValueError("vectors are not finite unit vectors")


def _array(
    arrays: Mapping[str, npt.NDArray[np.generic]], name: str, kind: str, shape: tuple[int, ...]
) -> npt.NDArray[np.generic]:
    if name not in arrays:
        raise ValueError(f"no {name!r} array")
    array = np.asarray(arrays[name])
    if array.dtype.kind != kind:
        raise ValueError(f"{name!r} has dtype {array.dtype}, wanted kind {kind!r}")
    if array.shape != shape:
        raise ValueError(f"{name!r} has shape {array.shape}, wanted {shape}")
    return array


def _strings(
    arrays: Mapping[str, npt.NDArray[np.generic]], name: str, shape: tuple[int, ...]
) -> npt.NDArray[np.str_]:
    return _array(arrays, name, "U", shape).astype(np.str_, copy=False)


def _flags(
    arrays: Mapping[str, npt.NDArray[np.generic]], name: str, shape: tuple[int, ...]
) -> npt.NDArray[np.bool_]:
    return _array(arrays, name, "b", shape).astype(np.bool_, copy=False)
