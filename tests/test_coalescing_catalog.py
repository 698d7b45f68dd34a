"""hydrate calls of one event-loop turn as one statement (engine.coalescing_catalog),
against plyr.fm's schema on a real PostgreSQL loaded with the sample catalogue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

import pytest

from bench.loopback.catalog_rows import load_into_postgres
from engine.coalescing_catalog import CoalescingCatalog
from engine.ports import Catalog, CatalogUnavailableError
from engine.postgres_catalog import PostgresCatalog
from engine.types import Track
from tests.support.samples import load_catalog

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

# the sample's track 39 carries a copyright label and 40 is unlisted: never hydrated
CALLERS = ([7, 3, 39, 999_999, 1], [3, 40, 12, 7], [2, 5])


class Counting:
    """the catalog underneath, counting the hydrate statements it is sent (or failing
    them, as a database that went away would)."""

    def __init__(self, inner: PostgresCatalog) -> None:
        self.inner = inner
        self.sent: list[list[int]] = []
        self.fails = False

    async def hydrate(self, track_ids: Sequence[int]) -> list[Track]:
        self.sent.append(list(track_ids))
        if self.fails:
            raise CatalogUnavailableError("the database went away")
        return await self.inner.hydrate(track_ids)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
async def postgres(postgres_dsn: str) -> AsyncIterator[PostgresCatalog]:
    await load_into_postgres(postgres_dsn, load_catalog())
    async with await PostgresCatalog.connect(postgres_dsn) as catalog:
        yield catalog


def coalesced(inner: Counting, **options: Any) -> CoalescingCatalog:
    return CoalescingCatalog(cast(Catalog, inner), **options)


async def test_concurrent_hydrates_are_one_statement_and_each_answer_is_its_own(
    postgres: PostgresCatalog,
) -> None:
    alone = [await postgres.hydrate(ids) for ids in CALLERS]
    assert [t.id for t in alone[0]] == [7, 3, 1]  # eligibility applied, order kept
    inner = Counting(postgres)
    catalog = coalesced(inner)
    together = await asyncio.gather(*(catalog.hydrate(ids) for ids in CALLERS))
    assert list(together) == alone
    assert len(inner.sent) == 1
    assert inner.sent[0] == list(dict.fromkeys(i for ids in CALLERS for i in ids))
    assert (catalog.stats.calls, catalog.stats.requests) == (3, 1)


async def test_a_lone_hydrate_is_sent_as_it_is(postgres: PostgresCatalog) -> None:
    inner = Counting(postgres)
    answer = await coalesced(inner).hydrate([5, 5, 2])
    assert inner.sent == [[5, 2]]
    assert [t.id for t in answer] == [5, 2]


async def test_more_ids_than_a_statement_takes_are_split(postgres: PostgresCatalog) -> None:
    inner = Counting(postgres)
    catalog = coalesced(inner, capacity=5)
    together = await asyncio.gather(*(catalog.hydrate(ids) for ids in CALLERS))
    assert list(together) == [await postgres.hydrate(ids) for ids in CALLERS]
    assert [len(sent) for sent in inner.sent] == [5, 5]  # 10 distinct ids, 5 a statement
    # a caller with more than a statement takes goes alone, as it would without sharing
    assert [t.id for t in await catalog.hydrate(list(range(1, 9)))] == list(range(1, 9))
    assert inner.sent[-1] == list(range(1, 9))
    assert catalog.stats.bypassed == 1


async def test_a_failed_statement_fails_every_caller_in_it(postgres: PostgresCatalog) -> None:
    inner = Counting(postgres)
    inner.fails = True
    catalog = coalesced(inner)
    outcomes = await asyncio.gather(
        *(catalog.hydrate(ids) for ids in CALLERS), return_exceptions=True
    )
    assert len(inner.sent) == 1
    assert all(isinstance(outcome, CatalogUnavailableError) for outcome in outcomes)
    assert len({id(outcome) for outcome in outcomes}) == len(CALLERS)  # each its own copy
    assert all(str(outcome) == "the database went away" for outcome in outcomes)


async def test_a_bad_id_fails_its_caller_and_nobody_else(postgres: PostgresCatalog) -> None:
    inner = Counting(postgres)
    catalog = coalesced(inner)
    bad = catalog.hydrate(cast(list[int], [1, "2"]))
    good, failed = await asyncio.gather(catalog.hydrate([3, 4]), bad, return_exceptions=True)
    assert isinstance(failed, TypeError)
    assert [t.id for t in cast(list[Track], good)] == [3, 4]
    assert inner.sent == [[3, 4]]


async def test_a_cancelled_caller_leaves_the_others_their_answers(
    postgres: PostgresCatalog,
) -> None:
    inner = Counting(postgres)
    catalog = coalesced(inner)
    first = asyncio.ensure_future(catalog.hydrate([1, 2]))
    second = asyncio.ensure_future(catalog.hydrate([2, 3]))
    await asyncio.sleep(0)  # both joined this turn's batch
    first.cancel()
    assert [t.id for t in await second] == [2, 3]
    assert first.cancelled()
    assert inner.sent == [[1, 2, 3]]
