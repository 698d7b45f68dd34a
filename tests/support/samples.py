"""the shared samples (../shared/samples) and deterministic test vectors for them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from engine.types import Vector

SHARED = Path(__file__).resolve().parents[3] / "shared"
SAMPLES = SHARED / "samples"
STORY_PATH = SAMPLES / "jetstream-v1.jsonl"
BAD_FRAMES_PATH = SAMPLES / "jetstream-v1-bad.txt"
CATALOG_PATH = SAMPLES / "catalog.json"
SCHEMA_PATH = SHARED / "schema" / "plyr.sql"


def load_catalog() -> dict[str, Any]:
    catalog: dict[str, Any] = json.loads(CATALOG_PATH.read_text())
    return catalog


def story_frames() -> list[str]:
    return [line for line in STORY_PATH.read_text().splitlines() if line.strip()]


def bad_frames() -> list[str]:
    return [line for line in BAD_FRAMES_PATH.read_text().splitlines() if line.strip()]


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
