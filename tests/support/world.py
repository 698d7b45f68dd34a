"""an embedded world for worker and API tests: the sample catalog in memory, its
tracks in an exact vector store, a fakeredis cache, services installed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import fakeredis
import numpy as np
import orjson
from docket import Docket, Worker

from engine.cache import cache_key
from engine.exact_store import ExactStore
from engine.memory_catalog import InMemoryCatalog
from engine.ports import VectorStore
from engine.types import Candidate, Vector
from tests.support.samples import STORY_PATH, load_catalog, track_vector
from worker.processes.worker import build_worker
from worker.recs.services import Services, installed, open_services
from worker.settings import Settings
from worker.tasks.playlist import recompute_playlist

P1_URI = "at://did:plc:6eougfhpazchdzjqplapphgj/fm.plyr.list/3m64hnzv42222"
P1_ID = "09e0ab78-6830-424c-a369-b758448162e0"
P2_URI = "at://did:plc:u55ek6a47a6h5f7bjozxcczu/fm.plyr.list/3m64hnzv42522"
P2_ID = "baf1c9ce-e234-47e8-b6e6-a5c567ad1c09"
NOT_OURS_URI = "at://did:plc:55qcdbm3qygnh2gsh53jzpii/fm.plyr.list/3m64hnzv42622"


@dataclass(frozen=True)
class StoryCommit:
    playlist_uri: str
    cid: str
    rev: str
    track_uris: list[str]


def story_commits() -> list[StoryCommit]:
    """the list-record creates/updates of the sample story, in order."""
    commits = []
    for line in STORY_PATH.read_text().splitlines():
        frame = json.loads(line)
        commit = frame.get("commit") or {}
        record = commit.get("record") or {}
        if commit.get("collection") != "fm.plyr.list" or commit.get("operation") == "delete":
            continue
        uri = f"at://{frame['did']}/fm.plyr.list/{commit['rkey']}"
        uris = [item["subject"]["uri"] for item in record.get("items", [])]
        commits.append(StoryCommit(uri, commit["cid"], commit["rev"], uris))
    return commits


def sample_store(track_ids: Iterable[int] | None = None) -> ExactStore:
    ids = list(track_ids) if track_ids is not None else [t["id"] for t in load_catalog()["tracks"]]
    return ExactStore(ids, np.stack([track_vector(t) for t in ids]))


class FlakyStore:
    """a VectorStore that raises the given errors first, then answers (fault injection
    for the retry logic; the real turbopuffer faults are tested against the server)."""

    def __init__(self, inner: VectorStore, errors: Sequence[Exception]) -> None:
        self.inner = inner
        self.errors = list(errors)
        self.calls = 0

    async def get_vectors(self, track_ids: Sequence[int]) -> dict[int, Vector]:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return await self.inner.get_vectors(track_ids)

    async def query_many(
        self, vectors: Sequence[Vector], *, top_k: int, exclude_ids: Iterable[int]
    ) -> list[list[Candidate]]:
        self.calls += 1
        return await self.inner.query_many(vectors, top_k=top_k, exclude_ids=exclude_ids)


class HeldStore:
    """the sample store, whose vector lookups made before `release` is set wait for it
    (a run held mid-way while the test does something else), then answer, or raise
    `error` if one is given; lookups after the release just answer."""

    def __init__(self, error: Exception | None = None) -> None:
        self.inner = sample_store()
        self.error = error
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def get_vectors(self, track_ids: Sequence[int]) -> dict[int, Vector]:
        if not self.release.is_set():
            self.entered.set()
            await self.release.wait()
            if self.error is not None:
                raise self.error
        return await self.inner.get_vectors(track_ids)

    async def query_many(
        self, vectors: Sequence[Vector], *, top_k: int, exclude_ids: Iterable[int]
    ) -> list[list[Candidate]]:
        return await self.inner.query_many(vectors, top_k=top_k, exclude_ids=exclude_ids)


@asynccontextmanager
async def embedded_services(
    *,
    store: Any = None,
    catalog: InMemoryCatalog | None = None,
    redis: Any = None,
    **settings: Any,
) -> AsyncIterator[Services]:
    """services over the sample catalog; pass `store=...` to wrap or replace the store."""
    catalog = catalog or InMemoryCatalog.from_json(load_catalog())
    redis = redis if redis is not None else fakeredis.FakeAsyncRedis()
    async with open_services(
        Settings(**settings),
        redis=redis,
        catalog=catalog,
        store=store if store is not None else sample_store(),
    ) as services:
        yield services


async def drain(docket: Docket, services: Services, concurrency: int = 4) -> None:
    """run a worker until every task (retries included) is done."""
    worker: Worker = build_worker(docket, concurrency=concurrency)
    worker.minimum_check_interval = timedelta(milliseconds=10)
    worker.scheduling_resolution = timedelta(milliseconds=10)
    with installed(services):
        async with worker:
            await worker.run_until_finished()


async def enqueue(docket: Docket, commit: object, key: str | None = None) -> None:
    await docket.add(recompute_playlist, key=key)(
        commit.playlist_uri,  # type: ignore[attr-defined]
        commit.cid,  # type: ignore[attr-defined]
        commit.rev,  # type: ignore[attr-defined]
        commit.track_uris,  # type: ignore[attr-defined]
    )


async def cached(services: Services, playlist_id: str, cid: str) -> dict[str, object] | None:
    raw = await services.redis.get(cache_key(playlist_id, cid))
    return None if raw is None else orjson.loads(raw)
