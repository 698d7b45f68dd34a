"""the demo catalogue's disk cache: generate once, load on every later run.

one `.npz` per parameter set, named by `CatalogueParams.cache_key` (every
parameter and the format version), holding every column: vectors, ids,
regions, and the row fields. a file that is missing, unreadable, truncated or
inconsistent is regenerated and rewritten, with a log line saying why; the
cache can only ever cost a regeneration, never a crash. writes go to a
temporary file and are renamed into place, so a run killed mid-write leaves
no half-file behind under the real name.
"""

from __future__ import annotations

import contextlib
import logging
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from worker.demo.catalogue import (
    DemoCatalogue,
    Progress,
    build_catalogue,
    generate_columns,
)
from worker.demo.columns import CatalogueColumns, CatalogueParams

logger = logging.getLogger(__name__)

# what np.load and lazy member reads raise on a damaged or foreign file
_UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/plyr-recs`, or `~/.cache/plyr-recs` (the XDG default)."""
    base = os.environ.get("XDG_CACHE_HOME")
    # XDG: a relative path in the variable is invalid and must be ignored
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return root / "plyr-recs"


def cache_path(cache_dir: Path, params: CatalogueParams) -> Path:
    return cache_dir / f"demo-catalogue-{params.cache_key}.npz"


def load_or_generate(
    cache_dir: Path | None = None,
    *,
    tracks: int = 20_000,
    artists: int = 300,
    regions: int = 24,
    dim: int = 512,
    seed: int = 0,
    progress: Progress | None = None,
) -> DemoCatalogue:
    """the catalogue for these parameters, from `cache_dir` if a good copy is there."""
    params = CatalogueParams(tracks=tracks, artists=artists, regions=regions, dim=dim, seed=seed)
    path = cache_path(cache_dir if cache_dir is not None else default_cache_dir(), params)
    columns = read_columns(path, params, progress=progress)
    if columns is None:
        columns = generate_columns(params, progress=progress)
        write_columns(path, columns)
    return build_catalogue(columns, progress=progress)


def read_columns(
    path: Path, params: CatalogueParams, *, progress: Progress | None = None
) -> CatalogueColumns | None:
    """the cached columns, or None (logged) when there is no usable file."""
    if not path.exists():
        logger.info("no demo catalogue cached at %s: generating it", path)
        return None
    if progress is not None:
        progress(0, 1, "reading cache")
    try:
        # our own handle: np.load leaks the one it opens when the zip is truncated
        with path.open("rb") as handle, np.load(handle, allow_pickle=False) as archive:
            columns = CatalogueColumns.from_arrays(
                {name: archive[name] for name in archive.files}, params
            )
    except _UNREADABLE as error:
        logger.warning("demo catalogue cache %s is unusable (%s): regenerating it", path, error)
        return None
    if progress is not None:
        progress(1, 1, "reading cache")
    logger.info("demo catalogue loaded from %s", path)
    return columns


def write_columns(path: Path, columns: CatalogueColumns) -> bool:
    """store the columns at `path` atomically; False (logged) if the disk refused.

    a read-only or full cache directory only means the next run generates again.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # typed loosely: numpy's stub cannot tell our names from savez's own keywords
        arrays: dict[str, Any] = columns.as_arrays()
        with temporary.open("wb") as handle:
            np.savez(handle, **arrays)
        os.replace(temporary, path)
    except OSError as error:
        logger.warning("could not cache the demo catalogue at %s: %s", path, error)
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        return False
    logger.info("demo catalogue cached at %s", path)
    return True
