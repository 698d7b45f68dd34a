"""the turbopuffer adapter, with the real client against a local turbopuffer-speaking server.

no mocks: the server records every request, so the tests assert on the round
trips and bodies the real client put on the wire, and it injects the faults.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import orjson
import pytest
import turbopuffer

from engine.ports import PermanentStoreError, TransientStoreError
from engine.turbopuffer_store import (
    LOOKUP_BATCH_SIZE,
    MAX_SUBQUERIES_PER_REQUEST,
    MAX_TOP_K,
    TurbopufferStore,
)
from engine.types import Vector
from tests.support.samples import track_vector
from worker.loopback.servers import free_port
from worker.loopback.turbopuffer import TurbopufferServer

pytestmark = pytest.mark.integration

NAMESPACE = "plyr-tracks-test"
API_KEY = "tpuf_secret_do_not_log"
CATALOG_IDS = range(1, 301)
PLAYLIST_MAX_ITEMS = 500  # DESIGN.md: a list record holds at most 500 items


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

    full_playlist = await store.get_vectors(ids[:PLAYLIST_MAX_ITEMS])
    assert len(full_playlist) == PLAYLIST_MAX_ITEMS
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


# --- faults ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_overload_and_server_faults_are_transient(
    server: TurbopufferServer, store: TurbopufferStore, status: int
) -> None:
    server.fail_next(status)

    with pytest.raises(TransientStoreError, match=str(status)) as raised:
        await store.get_vectors([1])

    assert isinstance(raised.value.__cause__, turbopuffer.APIStatusError)
    assert API_KEY not in str(raised.value)


async def test_a_rate_limited_multi_query_is_transient(
    server: TurbopufferServer, store: TurbopufferStore
) -> None:
    server.fail_next(429)

    with pytest.raises(TransientStoreError, match=r"query_many.*429"):
        await store.query_many([track_vector(1)], top_k=5, exclude_ids=[])


async def test_the_client_retries_server_faults_within_its_budget(
    server: TurbopufferServer,
) -> None:
    server.fail_next(500, times=2)

    async with make_store(server, max_retries=2) as store:
        vectors = await store.get_vectors([1, 2])

    assert sorted(vectors) == [1, 2]
    assert len(server.requests) == 3


async def test_a_stall_past_the_timeout_is_transient(server: TurbopufferServer) -> None:
    server.delay_next(30.0)

    async with make_store(server, timeout=0.3) as store:
        with pytest.raises(TransientStoreError, match="timed out") as raised:
            await store.query_many([track_vector(1)], top_k=5, exclude_ids=[])

    assert isinstance(raised.value.__cause__, turbopuffer.APITimeoutError)


async def test_an_unreachable_server_is_transient() -> None:
    base_url = f"http://127.0.0.1:{free_port()}"
    async with TurbopufferStore(
        api_key=API_KEY, namespace=NAMESPACE, base_url=base_url, max_retries=0
    ) as store:
        with pytest.raises(TransientStoreError, match="connect"):
            await store.get_vectors([1])


@pytest.mark.parametrize("status", [400, 401, 403, 422])
async def test_client_errors_are_permanent_and_not_retried(
    server: TurbopufferServer, status: int
) -> None:
    server.fail_next(status)

    async with make_store(server, max_retries=2) as store:
        with pytest.raises(PermanentStoreError, match=str(status)) as raised:
            await store.get_vectors([1])

    assert len(server.requests) == 1
    assert API_KEY not in str(raised.value)


# a 200 whose body is not the promised answer will not improve on retry: the
# connection delivered it whole (a cut-off body surfaces as a connection error).
@pytest.mark.parametrize(
    "body",
    [b'{"rows": [{"id": 1,', b"null", b"[1, 2, 3]", b'{"rows": "many"}'],
)
async def test_malformed_lookup_answers_are_permanent(
    server: TurbopufferServer, store: TurbopufferStore, body: bytes
) -> None:
    server.respond_next(body)

    with pytest.raises(PermanentStoreError):
        await store.get_vectors([1])


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"results": "nope"}', b'{"results": [{"rows": []}, {"rows": []}]}'],
)
async def test_malformed_multi_query_answers_are_permanent(
    server: TurbopufferServer, store: TurbopufferStore, body: bytes
) -> None:
    server.respond_next(body)

    with pytest.raises(PermanentStoreError):
        await store.query_many([track_vector(1)], top_k=5, exclude_ids=[])


# --- clients and event loops ---------------------------------------------------------


async def test_one_client_serves_every_call_in_a_loop(server: TurbopufferServer) -> None:
    store = make_store(server)
    for track_id in range(1, 6):
        await store.get_vectors([track_id])
        await store.query_many([track_vector(track_id)], top_k=3, exclude_ids=[track_id])
    assert store.stats.clients_opened == 1
    assert store.open_clients == 1

    await store.aclose()
    assert store.open_clients == 0
    await store.aclose()  # a second close is harmless

    assert await store.get_vectors([1])  # and the store can open a new client after
    assert store.stats.clients_opened == 2
    await store.aclose()


@pytest.fixture
def other_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """an event loop running in its own thread, as another process part would."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)
    loop.close()


async def test_each_event_loop_gets_its_own_client_and_aclose_closes_all(
    server: TurbopufferServer, other_loop: asyncio.AbstractEventLoop
) -> None:
    store = make_store(server)
    await store.get_vectors([1])
    elsewhere = asyncio.run_coroutine_threadsafe(store.get_vectors([2]), other_loop)
    found_elsewhere = await asyncio.wrap_future(elsewhere)
    assert list(found_elsewhere) == [2]
    assert store.stats.clients_opened == 2
    # peek at the clients themselves: closing them is the point of aclose
    clients = [opened.client for opened in store._clients.values()]

    await store.aclose()

    assert store.open_clients == 0
    assert all(client.is_closed() for client in clients)


async def test_the_server_also_serves_from_its_own_thread() -> None:
    server = TurbopufferServer().start_in_thread()
    try:
        server.seed(NAMESPACE, {1: track_vector(1), 2: track_vector(2)})
        async with make_store(server) as store:
            [candidates] = await store.query_many([track_vector(1)], top_k=2, exclude_ids=[1])
        assert [c.track_id for c in candidates] == [2]
        assert [request.kind for request in server.requests] == ["multi_query"]
    finally:
        server.stop_thread()


def test_the_store_never_shows_its_api_key() -> None:
    store = TurbopufferStore(api_key=API_KEY, namespace=NAMESPACE, region="gcp-us-central1")
    assert API_KEY not in repr(store)


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"api_key": "", "namespace": NAMESPACE, "region": "r"}, "API key"),
        ({"api_key": API_KEY, "namespace": "", "region": "r"}, "namespace"),
        ({"api_key": API_KEY, "namespace": NAMESPACE}, "exactly one"),
        ({"api_key": API_KEY, "namespace": NAMESPACE, "region": "r", "base_url": "x"}, "exactly"),
        ({"api_key": API_KEY, "namespace": NAMESPACE, "region": "r", "timeout": 0}, "positive"),
    ],
)
def test_bad_configuration_fails_at_construction(options: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        TurbopufferStore(**options)


@pytest.mark.parametrize(
    ("variable", "value", "options"),
    [
        ("TURBOPUFFER_REGION", "gcp-us-central1", {"base_url": "http://127.0.0.1:1"}),
        ("TURBOPUFFER_BASE_URL", "http://127.0.0.1:1", {"region": "gcp-us-central1"}),
    ],
)
def test_an_environment_the_client_would_trip_on_fails_at_construction(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, options: dict[str, Any]
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=variable):
        TurbopufferStore(api_key=API_KEY, namespace=NAMESPACE, **options)
