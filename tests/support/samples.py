"""the sample frames and catalogue, and deterministic test vectors for them.

the frames ship with the consumer (`bench.samples`); the catalogue that matches
them is test data (`tests/fixtures/catalog.json`); the schema is the engine's copy
of plyr.fm's (`engine.schema`)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from bench.samples import BAD_FRAMES_PATH, STORY_PATH, bad_frames, story_frames
from engine.schema import SCHEMA_PATH
from engine.types import Vector

__all__ = [
    "BAD_FRAMES_PATH",
    "CATALOG_PATH",
    "SCHEMA_PATH",
    "STORY_PATH",
    "bad_frames",
    "load_catalog",
    "story_frames",
    "track_vector",
]

CATALOG_PATH = Path(__file__).resolve().parents[1] / "fixtures" / "catalog.json"


def load_catalog() -> dict[str, Any]:
    catalog: dict[str, Any] = json.loads(CATALOG_PATH.read_text())
    return catalog


def track_vector(track_id: int, dim: int = 512) -> Vector:
    """a deterministic unit vector per track id (the samples carry no embeddings).

    tracks share one of four "sound regions" by id, so nearest neighbours are
    meaningful: ids with the same `id % 4` are close to each other.
    """
    region = np.random.default_rng(track_id % 4).standard_normal(dim)
    seed = int.from_bytes(hashlib.blake2b(str(track_id).encode(), digest_size=8).digest(), "big")
    noise = np.random.default_rng(seed).standard_normal(dim)
    vector = (region * 3.0 + noise).astype(np.float32)
    normalized: Vector = vector / np.linalg.norm(vector)
    return normalized
