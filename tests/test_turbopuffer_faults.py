"""the turbopuffer adapter's faults, clients and configuration, with the real client
against a local turbopuffer-speaking server that injects the faults.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import turbopuffer

from bench.loopback.servers import free_port
from bench.loopback.turbopuffer import TurbopufferServer
from engine.ports import PermanentStoreError, TransientStoreError
from engine.turbopuffer_store import (
    TurbopufferStore,
)
from tests.support.samples import track_vector
from tests.support.turbopuffer_world import (
    API_KEY,
    NAMESPACE,
    make_store,
    server,
    store,
)

pytestmark = pytest.mark.integration

__all__ = ["server", "store"]  # fixtures


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
    clients = store._clients.values()

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
        # turbopuffer's names are [A-Za-z0-9-_.]{1,128}: the request path needs no escaping
        ({"api_key": API_KEY, "namespace": "tracks/../admin", "region": "r"}, "namespace name"),
        ({"api_key": API_KEY, "namespace": "x" * 129, "region": "r"}, "namespace name"),
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
