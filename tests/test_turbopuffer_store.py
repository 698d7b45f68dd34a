"""the turbopuffer adapter's two calls, with the real client against a local
turbopuffer-speaking server: id lookups (`get_vectors`) and multi-queries (`query_many`).

no mocks: the server records every request, so the tests assert on the round
trips and bodies the real client put on the wire.
"""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from bench.loopback.turbopuffer import TurbopufferServer
from engine.turbopuffer_store import (
    LOOKUP_BATCH_SIZE,
    MAX_SUBQUERIES_PER_REQUEST,
    MAX_TOP_K,
    TurbopufferStore,
)
from engine.types import MAX_LIST_ITEMS, Vector
from tests.support.samples import track_vector
from tests.support.turbopuffer_world import (
    API_KEY,
    NAMESPACE,
    brute_force,
    server,
    store,
)

pytestmark = pytest.mark.integration

__all__ = ["server", "store"]  # fixtures


# --- get_vectors -----------------------------------------------------------------


async def test_get_vectors_returns_the_ids_that_have_a_vector(
    server: TurbopufferServer, store: TurbopufferStore
) -> None:
    server.seed(NAMESPACE, {1000: None})  # a track written without an embedding

    vectors = await store.get_vectors([7, 3, 999_999, 1000])

    assert sorted(vectors) == [3, 7]
    for track_id, vector in vectors.items():
        assert vector.dtype == np.float32
        np.testing.assert_array_equal(vector, track_vector(track_id))
    [request] = server.requests
    assert request.kind == "query"
    assert request.body == {
        "rank_by": ["id", "asc"],
        "filters": ["id", "In", [7, 3, 999_999, 1000]],
        "include_attributes": ["vector"],
        "top_k": 4,
        "vector_encoding": "base64",
    }


async def test_get_vectors_asks_once_per_distinct_id(
    server: TurbopufferServer, store: TurbopufferStore
) -> None:
    vectors = await store.get_vectors([5, 5, 6, 5])

    assert sorted(vectors) == [5, 6]
    [request] = server.requests
    assert request.body["filters"] == ["id", "In", [5, 6]]
    assert request.body["top_k"] == 2


async def test_numpy_ids_are_welcome_and_other_ids_refused(
    server: TurbopufferServer, store: TurbopufferStore
) -> None:
    vectors = await store.get_vectors(list(np.array([3, 4], dtype=np.int64)))
    assert sorted(vectors) == [3, 4]
    assert server.requests[0].body["filters"] == ["id", "In", [3, 4]]

    with pytest.raises(TypeError, match="integers"):
        await store.get_vectors(["3"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="integers"):
        await store.query_many([track_vector(1)], top_k=3, exclude_ids=[True])


async def test_get_vectors_of_nothing_sends_nothing(
    server: TurbopufferServer, store: TurbopufferStore
) -> None:
    assert await store.get_vectors([]) == {}
    assert server.requests == []


async def test_a_full_playlist_is_one_lookup_and_one_more_id_is_two(
    server: TurbopufferServer, store: TurbopufferStore
) -> None:
    ids = list(range(1, LOOKUP_BATCH_SIZE + 2))
    server.seed(NAMESPACE, {track_id: track_vector(track_id) for track_id in ids})

    full_playlist = await store.get_vectors(ids[:MAX_LIST_ITEMS])
    assert len(full_playlist) == MAX_LIST_ITEMS
    assert len(server.requests) == 1

    server.reset()
    everything = await store.get_vectors(ids)
    assert sorted(everything) == ids
    sizes = [len(request.body["filters"][2]) for request in server.requests]
    assert sizes == [LOOKUP_BATCH_SIZE, 1]
    assert [request.body["top_k"] for request in server.requests] == sizes


async def test_a_namespace_never_written_has_no_vectors(server: TurbopufferServer) -> None:
    async with TurbopufferStore(
        api_key=API_KEY, namespace="nobody-wrote-here", base_url=server.base_url
    ) as store:
        assert await store.get_vectors([1, 2, 3]) == {}
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    "stored",
    [
        [0.5] * 3,  # wrong dimension
        [1e39] * 512,  # overflows float32: not finite
        [0.0] * 512,  # no direction: cosine distance undefined
        "not base64 at all!",
        "AAAA",  # base64 of one float
        {"nested": "object"},
    ],
)
async def test_unusable_stored_vectors_are_skipped_and_counted(
    server: TurbopufferServer, store: TurbopufferStore, stored: object
) -> None:
    server.seed_raw(NAMESPACE, 5000, stored)

    vectors = await store.get_vectors([1, 5000])

    assert list(vectors) == [1]
    assert store.stats.rejected_vectors == 1


async def test_rows_nobody_asked_for_are_refused(
    server: TurbopufferServer, store: TurbopufferStore
) -> None:
    answer = {"rows": [{"id": 1, "vector": track_vector(1).tolist()}, {"id": 2, "vector": None}]}
    server.respond_next(orjson.dumps(answer))

    vectors = await store.get_vectors([2])

    assert vectors == {}
    assert store.stats.rejected_vectors == 2


async def test_vectors_written_through_the_real_client_come_back_exactly(
    server: TurbopufferServer, store: TurbopufferStore
) -> None:
    fresh = {track_id: track_vector(track_id) for track_id in (4001, 4002)}

    await server.load(NAMESPACE, fresh)
    vectors = await store.get_vectors([4001, 4002])

    [write] = server.requests_of("write")
    assert write.body["distance_metric"] == "cosine_distance"
    assert write.body["upsert_columns"]["id"] == [4001, 4002]
    for track_id, vector in fresh.items():
        np.testing.assert_array_equal(vectors[track_id], vector)


# --- query_many ------------------------------------------------------------------


async def test_query_many_finds_the_exact_nearest_neighbours(
    server: TurbopufferServer, store: TurbopufferStore
) -> None:
    rng = np.random.default_rng(7)
    queries = [track_vector(10), track_vector(11) + track_vector(15), rng.standard_normal(512)]
    queries = [np.asarray(query, dtype=np.float32) for query in queries]
    exclude = {10, 14, 18, 22}

    results = await store.query_many(queries, top_k=20, exclude_ids=exclude)

    assert len(results) == 3
    for query, candidates in zip(queries, results, strict=True):
        expected = brute_force(query, exclude, 20)
        assert [c.track_id for c in candidates] == [track_id for track_id, _ in expected]
        np.testing.assert_allclose(
            [c.distance for c in candidates], [d for _, d in expected], rtol=1e-5, atol=1e-6
        )


async def test_query_many_excludes_the_playlist_server_side(
    server: TurbopufferServer, store: TurbopufferStore
) -> None:
    playlist = [12, 16, 20, 24, 28]  # one sound region: each other's nearest neighbours
    queries = [track_vector(track_id) for track_id in playlist[:3]]

    results = await store.query_many(queries, top_k=10, exclude_ids=iter(playlist))

    [request] = server.requests
    assert request.kind == "multi_query"
    assert request.query_string == "stainless_overload=multiQuery"
    assert len(request.body["queries"]) == 3
    for subquery, query in zip(request.body["queries"], queries, strict=True):
        assert subquery["filters"] == ["id", "NotIn", sorted(playlist)]
        assert subquery["top_k"] == 10
        assert subquery["distance_metric"] == "cosine_distance"
        assert subquery["rank_by"][:2] == ["vector", "ANN"]
        np.testing.assert_allclose(subquery["rank_by"][2], query)
    for candidates in results:
        assert len(candidates) == 10
        assert not {c.track_id for c in candidates} & set(playlist)
        assert all(c.track_id % 4 == 0 for c in candidates[:3])  # still the same region
        distances = [c.distance for c in candidates]
        assert distances == sorted(distances)


async def test_query_many_without_exclusions_sends_no_filter(
    server: TurbopufferServer, store: TurbopufferStore
) -> None:
    [candidates] = await store.query_many([track_vector(9)], top_k=3, exclude_ids=[])

    assert candidates[0].track_id == 9
    assert candidates[0].distance == pytest.approx(0.0, abs=1e-6)
    [request] = server.requests
    assert "filters" not in request.body["queries"][0]


async def test_seventeen_vectors_take_two_requests_in_order(
    server: TurbopufferServer, store: TurbopufferStore
) -> None:
    ids = list(range(101, 101 + MAX_SUBQUERIES_PER_REQUEST + 1))

    results = await store.query_many([track_vector(i) for i in ids], top_k=2, exclude_ids=[])

    assert [candidates[0].track_id for candidates in results] == ids
    sizes = [len(request.body["queries"]) for request in server.requests]
    assert sizes == [MAX_SUBQUERIES_PER_REQUEST, 1]


async def test_query_many_on_a_namespace_never_written_finds_nothing(
    server: TurbopufferServer,
) -> None:
    async with TurbopufferStore(
        api_key=API_KEY, namespace="nobody-wrote-here", base_url=server.base_url
    ) as store:
        queries = [track_vector(1), track_vector(2)]
        assert await store.query_many(queries, top_k=5, exclude_ids=[1]) == [[], []]


async def test_query_many_of_no_vectors_sends_nothing(
    server: TurbopufferServer, store: TurbopufferStore
) -> None:
    assert await store.query_many([], top_k=5, exclude_ids=[1]) == []
    assert server.requests == []


@pytest.mark.parametrize("top_k", [0, -1, MAX_TOP_K + 1])
async def test_top_k_is_bounded(store: TurbopufferStore, top_k: int) -> None:
    with pytest.raises(ValueError, match="top_k"):
        await store.query_many([track_vector(1)], top_k=top_k, exclude_ids=[])


@pytest.mark.parametrize(
    "query",
    [np.ones(511, dtype=np.float32), np.full(512, np.nan, dtype=np.float32)],
)
async def test_query_vectors_are_validated(store: TurbopufferStore, query: Vector) -> None:
    with pytest.raises(ValueError, match="query vector"):
        await store.query_many([query], top_k=5, exclude_ids=[])


async def test_unusable_candidates_are_skipped_and_counted(
    server: TurbopufferServer, store: TurbopufferStore
) -> None:
    rows = [
        {"id": 5, "$dist": 0.1},
        {"id": "five", "$dist": 0.2},  # not a track id
        {"id": 6},  # no distance
        {"id": 5, "$dist": 0.3},  # a duplicate
        {"id": 1, "$dist": 0.05},  # excluded, yet returned
        {"id": 7, "$dist": 0.4},
    ]
    server.respond_next(orjson.dumps({"results": [{"rows": rows}]}))

    [candidates] = await store.query_many([track_vector(1)], top_k=5, exclude_ids=[1])

    assert [(c.track_id, c.distance) for c in candidates] == [(5, 0.1), (7, 0.4)]
    assert store.stats.rejected_candidates == 4


async def test_recomputing_a_hundred_track_playlist_takes_two_requests(
    server: TurbopufferServer, store: TurbopufferStore
) -> None:
    playlist = list(range(1, 101))

    vectors = await store.get_vectors(playlist)
    matrix = np.stack([vectors[track_id] for track_id in playlist])
    centroids = [part.mean(axis=0).astype(np.float32) for part in np.array_split(matrix, 3)]
    results = await store.query_many(centroids, top_k=30, exclude_ids=playlist)

    assert [request.kind for request in server.requests] == ["query", "multi_query"]
    assert len(results) == 3
    for candidates in results:
        assert len(candidates) == 30
        assert all(c.track_id > 100 for c in candidates)
