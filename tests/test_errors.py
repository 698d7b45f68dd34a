"""one error hierarchy, one classifier: what each fault's kind makes the service do."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.exceptions
from docket import Docket

from engine.errors import ENGINE_FAULTS, Fault, InvalidInputError
from engine.ports import (
    CatalogQueryError,
    CatalogUnavailableError,
    PermanentStoreError,
    TransientStoreError,
)
from jetstream.enqueue import EnqueueFailed
from jetstream.faults import FAULTS
from tests.support.world import (
    P1_ID,
    FlakyStore,
    cached,
    drain,
    embedded_services,
    enqueue,
    sample_store,
    story_commits,
)
from worker.store.lock import PlaylistBusy


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (TransientStoreError("429"), Fault.TRANSIENT),
        (CatalogUnavailableError("down"), Fault.TRANSIENT),
        (EnqueueFailed("docket refused"), Fault.TRANSIENT),
        (PlaylistBusy("held"), Fault.TRANSIENT),
        (redis.exceptions.ConnectionError("refused"), Fault.TRANSIENT),
        (redis.exceptions.BusyLoadingError("loading"), Fault.TRANSIENT),
        (redis.exceptions.TimeoutError("slow"), Fault.TRANSIENT),
        (redis.exceptions.ReadOnlyError("replica"), Fault.TRANSIENT),
        (PermanentStoreError("401"), Fault.PERMANENT),
        (CatalogQueryError("no such column"), Fault.PERMANENT),
        (InvalidInputError("too many items"), Fault.PERMANENT),
        # bugs are neither: they must surface, not be retried quietly or dropped
        (ValueError("a bug"), None),
        (KeyError("a bug"), None),
        (TypeError("a bug"), None),
        (redis.exceptions.ResponseError("WRONGTYPE"), None),
    ],
)
def test_every_fault_has_one_kind_and_a_bug_has_none(
    error: BaseException, kind: Fault | None
) -> None:
    assert FAULTS(error) is kind


def test_the_engine_classifier_knows_no_client_library() -> None:
    assert ENGINE_FAULTS(redis.exceptions.ConnectionError("refused")) is None
    assert ENGINE_FAULTS(TransientStoreError("429")) is Fault.TRANSIENT


@pytest.fixture
async def docket() -> AsyncIterator[Docket]:
    async with Docket(name=f"test-{uuid.uuid4().hex[:8]}", url="memory://") as docket:
        yield docket


async def test_a_bug_in_a_recompute_is_counted_apart_and_never_dropped_as_permanent(
    docket: Docket,
) -> None:
    # a plain ValueError (a programming error) used to count as a deliberate drop
    commit = story_commits()[1]
    flaky = FlakyStore(sample_store(), [ValueError("a bug in the adapter")])
    async with embedded_services(store=flaky) as services:
        await enqueue(docket, commit)
        await drain(docket, services)
        assert services.counts["failed:unexpected"] == 1
        assert services.counts["dropped:permanent"] == 0
        # docket retried it, and the second run computed the entry
        assert await cached(services, P1_ID, commit.cid) is not None
