"""the turbopuffer adapter's test world: a loopback turbopuffer-speaking server seeded
with the test vectors, and stores of the real client pointed at it."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from bench.loopback.turbopuffer import TurbopufferServer
from engine.turbopuffer_store import TurbopufferStore
from engine.types import Vector
from tests.support.samples import track_vector

NAMESPACE = "plyr-tracks-test"
API_KEY = "tpuf_secret_do_not_log"
CATALOG_IDS = range(1, 301)


@functools.cache
def catalog_vectors() -> dict[int, Vector]:
    return {track_id: track_vector(track_id) for track_id in CATALOG_IDS}


@pytest.fixture
async def server() -> AsyncIterator[TurbopufferServer]:
    async with TurbopufferServer() as running:
        running.seed(NAMESPACE, catalog_vectors())
        yield running


def make_store(server: TurbopufferServer, **options: Any) -> TurbopufferStore:
    settings: dict[str, Any] = {"timeout": 5.0, "max_retries": 0, **options}
    return TurbopufferStore(
        api_key=API_KEY, namespace=NAMESPACE, base_url=server.base_url, **settings
    )


@pytest.fixture
async def store(server: TurbopufferServer) -> AsyncIterator[TurbopufferStore]:
    async with make_store(server) as opened:
        yield opened


def brute_force(query: Vector, exclude: set[int], top_k: int) -> list[tuple[int, float]]:
    """exact cosine neighbours over the seeded catalogue, for comparison."""
    ids = [track_id for track_id in CATALOG_IDS if track_id not in exclude]
    matrix = np.stack([catalog_vectors()[track_id] for track_id in ids])
    similarity = matrix @ query / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(query))
    ranked = sorted(zip(ids, 1.0 - similarity, strict=True), key=lambda pair: (pair[1], pair[0]))
    return [(track_id, float(distance)) for track_id, distance in ranked[:top_k]]
