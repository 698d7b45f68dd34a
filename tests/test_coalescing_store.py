"""concurrent calls through `CoalescingStore` share turbopuffer requests: the real
client against the loopback turbopuffer server, which records every request, so
the tests count what went on the wire and compare each caller's answer with the
one it gets alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import numpy as np
import pytest

from bench.loopback.turbopuffer import TurbopufferServer
from engine.coalescing_store import CoalescingStore, coalescing
from engine.exact_store import ExactStore
from engine.ports import MultiQueryStore, PermanentStoreError, TransientStoreError
from engine.turbopuffer_store import (
    LOOKUP_BATCH_SIZE,
    MAX_SUBQUERIES_PER_REQUEST,
    AnnSubquery,
    TurbopufferStore,
)
from engine.types import Candidate, Vector
from tests.support.jetstream_world import eventually
from tests.support.samples import track_vector
from tests.support.turbopuffer_world import brute_force, make_store, server

pytestmark = pytest.mark.integration

__all__ = ["server"]  # fixture


@pytest.fixture
async def plain(server: TurbopufferServer) -> AsyncIterator[TurbopufferStore]:
    """the store alone: the reference answers, and today's requests."""
    async with make_store(server) as opened:
        yield opened


@pytest.fixture
async def shared(server: TurbopufferServer) -> AsyncIterator[CoalescingStore[AnnSubquery]]:
    store = CoalescingStore(make_store(server))
    yield store
    await store.aclose()


def searches(count: int, first: int) -> list[Vector]:
    return [track_vector(track_id) for track_id in range(first, first + count)]


def ranked(results: list[list[Candidate]]) -> list[list[int]]:
    return [[candidate.track_id for candidate in candidates] for candidates in results]


async def alone(
    store: TurbopufferStore, calls: Sequence[tuple[list[Vector], int, list[int]]]
) -> list[list[list[Candidate]]]:
    """each call's answer, one after the other, straight from the store."""
    return [
        await store.query_many(vectors, top_k=top_k, exclude_ids=exclude)
        for vectors, top_k, exclude in calls
    ]


async def together(
    store: CoalescingStore[AnnSubquery], calls: Sequence[tuple[list[Vector], int, list[int]]]
) -> list[list[list[Candidate]]]:
    return list(
        await asyncio.gather(
            *(
                store.query_many(vectors, top_k=top_k, exclude_ids=exclude)
                for vectors, top_k, exclude in calls
            )
        )
    )


# --- query_many ---------------------------------------------------------------------


async def test_concurrent_searches_are_one_request_and_each_answer_is_its_own(
    server: TurbopufferServer,
    plain: TurbopufferStore,
    shared: CoalescingStore[AnnSubquery],
) -> None:
    calls = [
        (searches(1, 10), 5, [10, 14]),
        (searches(3, 20), 12, [20, 21, 22, 40]),
        (searches(5, 50), 30, []),
        (searches(2, 90), 1, [90]),
    ]
    expected = await alone(plain, calls)
    server.reset()

    answers = await together(shared, calls)

    assert [request.kind for request in server.requests] == ["multi_query"]
    assert len(server.requests[0].body["queries"]) == 11
    assert answers == expected
    assert (shared.stats.calls, shared.stats.requests) == (4, 1)


async def test_each_caller_keeps_its_own_exclusions_and_top_k(
    server: TurbopufferServer, shared: CoalescingStore[AnnSubquery]
) -> None:
    query = track_vector(12)
    nearest = [track_id for track_id, _ in brute_force(query, set(), 8)]
    mine = nearest[:4]  # what the other caller's search finds first

    [[theirs], [ours]] = await together(shared, [([query], 8, []), ([query], 3, mine)])

    [request] = server.requests
    filters = [subquery.get("filters") for subquery in request.body["queries"]]
    assert filters == [None, ["id", "NotIn", sorted(mine)]]
    assert [candidate.track_id for candidate in theirs] == nearest
    assert [candidate.track_id for candidate in ours] == nearest[4:7]
    assert not {candidate.track_id for candidate in ours} & set(mine)


async def test_more_than_sixteen_searches_are_split_across_requests(
    server: TurbopufferServer,
    plain: TurbopufferStore,
    shared: CoalescingStore[AnnSubquery],
) -> None:
    # 7 callers of 3 searches: 21, so 16 then 5; the sixth caller straddles the two
    calls = [(searches(3, 100 + 3 * n), 4, [100 + 3 * n]) for n in range(7)]
    expected = await alone(plain, calls)
    server.reset()

    answers = await together(shared, calls)

    sizes = [len(request.body["queries"]) for request in server.requests]
    assert sizes == [MAX_SUBQUERIES_PER_REQUEST, 5]
    assert answers == expected


async def test_a_caller_with_more_searches_than_a_request_holds_goes_alone(
    server: TurbopufferServer, plain: TurbopufferStore, shared: CoalescingStore[AnnSubquery]
) -> None:
    big = (searches(MAX_SUBQUERIES_PER_REQUEST + 2, 101), 2, [101])
    small = (searches(1, 7), 2, [7])
    expected = await alone(plain, [big, small])
    server.reset()

    answers = await together(shared, [big, small])

    # the big one as the store sends it (16, then 2); the small one on its own
    sizes = sorted(len(request.body["queries"]) for request in server.requests)
    assert sizes == [1, 2, MAX_SUBQUERIES_PER_REQUEST]
    assert answers == expected
    assert shared.stats.bypassed == 1


async def test_a_lone_search_is_sent_as_the_store_sends_it(
    server: TurbopufferServer, plain: TurbopufferStore, shared: CoalescingStore[AnnSubquery]
) -> None:
    vectors, exclude = searches(3, 40), [40, 41, 42, 77]
    expected = await plain.query_many(vectors, top_k=9, exclude_ids=exclude)
    [today] = server.requests
    server.reset()

    answer = await shared.query_many(vectors, top_k=9, exclude_ids=exclude)

    [request] = server.requests
    assert (request.path, request.query_string, request.body) == (
        today.path,
        today.query_string,
        today.body,
    )
    assert answer == expected


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_a_failed_shared_request_fails_every_caller_in_it_as_transient(
    server: TurbopufferServer, shared: CoalescingStore[AnnSubquery], status: int
) -> None:
    server.fail_next(status)
    calls = [(searches(1, n), 3, [n]) for n in (1, 2, 3)]

    outcomes = await asyncio.gather(
        *(shared.query_many(v, top_k=k, exclude_ids=x) for v, k, x in calls),
        return_exceptions=True,
    )

    assert len(server.requests) == 1
    assert all(type(outcome) is TransientStoreError for outcome in outcomes)
    assert len({str(outcome) for outcome in outcomes}) == 1
    assert str(status) in str(outcomes[0])
    # each caller its own exception object, chained to the shared one
    assert len({id(outcome) for outcome in outcomes}) == 3
    causes = {id(outcome.__cause__) for outcome in outcomes if isinstance(outcome, Exception)}
    assert len(causes) == 1


async def test_a_timed_out_shared_request_fails_every_caller_in_it_as_transient(
    server: TurbopufferServer,
) -> None:
    server.delay_next(30.0)
    store = CoalescingStore(make_store(server, timeout=0.3))
    try:
        outcomes = await asyncio.gather(
            store.query_many(searches(1, 5), top_k=3, exclude_ids=[]),
            store.query_many(searches(2, 8), top_k=3, exclude_ids=[]),
            return_exceptions=True,
        )
        # the next turn's calls make a request of their own, and are answered
        assert sorted(await store.get_vectors([1, 2])) == [1, 2]
    finally:
        await store.aclose()

    assert [type(outcome) for outcome in outcomes] == [TransientStoreError] * 2
    assert all("timed out" in str(outcome) for outcome in outcomes)
    assert [request.kind for request in server.requests] == ["multi_query", "query"]


async def test_a_malformed_shared_answer_is_permanent_for_all(
    server: TurbopufferServer, shared: CoalescingStore[AnnSubquery]
) -> None:
    server.respond_next(b'{"results": []}')

    outcomes = await asyncio.gather(
        shared.query_many(searches(1, 5), top_k=3, exclude_ids=[]),
        shared.query_many(searches(1, 6), top_k=3, exclude_ids=[]),
        return_exceptions=True,
    )

    assert [type(outcome) for outcome in outcomes] == [PermanentStoreError] * 2


async def test_bad_input_fails_its_caller_and_nobody_else(
    server: TurbopufferServer, plain: TurbopufferStore, shared: CoalescingStore[AnnSubquery]
) -> None:
    expected = await plain.query_many(searches(2, 30), top_k=4, exclude_ids=[])
    server.reset()

    outcomes = await asyncio.gather(
        shared.query_many(searches(2, 30), top_k=4, exclude_ids=[]),
        shared.query_many(searches(1, 30), top_k=0, exclude_ids=[]),
        shared.query_many([np.ones(7, dtype=np.float32)], top_k=4, exclude_ids=[]),
        shared.get_vectors([1, "2"]),  # type: ignore[list-item]
        return_exceptions=True,
    )

    assert outcomes[0] == expected
    assert [type(outcome) for outcome in outcomes[1:]] == [ValueError, ValueError, TypeError]
    assert [request.kind for request in server.requests] == ["multi_query"]


async def test_a_cancelled_caller_leaves_the_others_their_answers(
    server: TurbopufferServer, plain: TurbopufferStore, shared: CoalescingStore[AnnSubquery]
) -> None:
    calls = [(searches(2, 60 + 2 * n), 6, [60 + 2 * n]) for n in range(3)]
    expected = await alone(plain, calls)
    server.reset()
    server.delay_next(1.0)  # the shared request stalls while one caller gives up
    tasks = [asyncio.create_task(shared.query_many(v, top_k=k, exclude_ids=x)) for v, k, x in calls]
    await eventually(lambda: bool(server.requests), what="the shared request in flight")

    tasks[1].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)

    assert isinstance(done[1], asyncio.CancelledError)
    assert [done[0], done[2]] == [expected[0], expected[2]]
    assert len(server.requests) == 1


# --- get_vectors --------------------------------------------------------------------


async def test_concurrent_lookups_are_one_request_for_the_union_of_their_ids(
    server: TurbopufferServer, shared: CoalescingStore[AnnSubquery]
) -> None:
    asked = [[3, 7, 9], [9, 3, 11], [250, 999_999], [7]]

    answers = await asyncio.gather(*(shared.get_vectors(ids) for ids in asked))

    [request] = server.requests
    assert request.body["filters"] == ["id", "In", [3, 7, 9, 11, 250, 999_999]]
    assert request.body["top_k"] == 6
    for ids, answer in zip(asked, answers, strict=True):
        assert sorted(answer) == sorted(set(ids) - {999_999})  # its own ids only
        for track_id, vector in answer.items():
            np.testing.assert_array_equal(vector, track_vector(track_id))


async def test_lookups_beyond_one_request_are_split_at_the_store_s_bound(
    server: TurbopufferServer, plain: TurbopufferStore, shared: CoalescingStore[AnnSubquery]
) -> None:
    # 3 callers of 200 ids (1..300 have a vector, 301..600 none): 600 ids, 500 a request
    asked = [list(range(1 + 200 * n, 201 + 200 * n)) for n in range(3)]
    expected = [await plain.get_vectors(ids) for ids in asked]
    server.reset()

    answers = await asyncio.gather(*(shared.get_vectors(ids) for ids in asked))

    sizes = [len(request.body["filters"][2]) for request in server.requests]
    assert sizes == [LOOKUP_BATCH_SIZE, 600 - LOOKUP_BATCH_SIZE]
    for answer, reference in zip(answers, expected, strict=True):
        assert answer.keys() == reference.keys()
        for track_id, vector in answer.items():
            np.testing.assert_array_equal(vector, reference[track_id])


async def test_a_lone_lookup_is_sent_as_the_store_sends_it(
    server: TurbopufferServer, plain: TurbopufferStore, shared: CoalescingStore[AnnSubquery]
) -> None:
    ids = [7, 3, 999_999, 3, 1]
    await plain.get_vectors(ids)
    [today] = server.requests
    server.reset()

    found = await shared.get_vectors(list(np.array(ids, dtype=np.int64)))

    [request] = server.requests
    assert request.body == today.body
    assert sorted(found) == [1, 3, 7]
    assert await shared.get_vectors([]) == {}
    assert len(server.requests) == 1


async def test_a_failed_lookup_fails_every_caller_in_it(
    server: TurbopufferServer, shared: CoalescingStore[AnnSubquery]
) -> None:
    server.fail_next(502)

    outcomes = await asyncio.gather(
        shared.get_vectors([1]), shared.get_vectors([2, 3]), return_exceptions=True
    )

    assert [type(outcome) for outcome in outcomes] == [TransientStoreError] * 2
    assert len(server.requests) == 1
    assert sorted(await shared.get_vectors([2, 3])) == [2, 3]  # the next turn: a new request


# --- what gets wrapped ----------------------------------------------------------------


def test_only_a_store_that_can_share_requests_is_wrapped(server: TurbopufferServer) -> None:
    store = make_store(server)
    exact = ExactStore([1], np.stack([track_vector(1)]))

    assert isinstance(store, MultiQueryStore)
    wrapped = coalescing(store)
    assert isinstance(wrapped, CoalescingStore)
    assert wrapped.store is store
    assert coalescing(exact) is exact
