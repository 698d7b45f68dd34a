"""a hostile or hanging PDS is asked once, by the API and by the reconcile loop alike
(issue 23, findings 1, 5 and 9): real API, real reconcile passes, loopback PDSes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from bench.loopback.pds import LoopbackPds, list_record_value
from bench.loopback.servers import RedisServer
from jetstream.records import RecordLimits
from tests.support.api_world import PUBLIC_ID, URI_OF, World, built_world, internal, running_api
from tests.support.pds_server import list_record
from tests.support.reconcile_world import (
    BOB,
    CAROL,
    ReconcileWorld,
    pass_and_drain,
    reconcile_world,
    running_parts,
)
from tests.support.world import sample_store
from worker.api.app import SOURCE_HEADER
from worker.identity.pds import PdsRecords
from worker.identity.pds_lists import PassRecords, WantedRecord
from worker.settings import Settings
from worker.wiring import pds_client

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def api_world() -> AsyncIterator[World]:
    async with built_world() as built:
        yield built


async def test_the_api_reads_a_hostile_record_once(
    api_world: World, redis_client: aioredis.Redis
) -> None:
    """before: each request for the attacker's own playlist read its 0.8 MB record
    again and spent ~0.6 s of CPU on it, on the API's event loop."""
    items = [URI_OF[1 + n % 20] for n in range(9_000)]
    api_world.pds.put(
        api_world.record_uri("3mpublic22222"), "bafyreic" + "c" * 51, list_record(items)
    )
    async with running_api(api_world, redis_client, store=sample_store()) as api:
        answers = [await api.get(PUBLIC_ID, internal(api_world.alice.did)) for _ in range(4)]
    assert {response.headers[SOURCE_HEADER] for response in answers} == {"record_rejected"}
    assert {response.content for response in answers} == {b'{"tracks":[],"available":false}'}
    assert len(api_world.pds.requests) == 1


async def test_the_api_waits_for_a_hanging_pds_once(
    api_world: World, redis_client: aioredis.Redis
) -> None:
    """before: every request waited out the PDS timeout in a compute slot (finding 5)."""
    api_world.pds.fault = "stall"
    async with running_api(api_world, redis_client, store=sample_store()) as api:
        answers = [await api.get(PUBLIC_ID, internal(api_world.alice.did)) for _ in range(4)]
    assert {response.headers[SOURCE_HEADER] for response in answers} == {"pds_unreachable"}
    assert len(api_world.pds.requests) == 1


# --- the reconcile loop ------------------------------------------------------------------


@pytest.fixture
async def world(postgres_dsn: str, redis_server: RedisServer) -> AsyncIterator[ReconcileWorld]:
    async with reconcile_world(postgres_dsn, redis_server) as built:
        await built.add("bob0", BOB, [2, 6])
        await built.add("carol0", CAROL, [12, 16])
        await built.add("carol1", CAROL, [13, 17])
        yield built


@pytest.fixture
async def shared_client(world: ReconcileWorld) -> AsyncIterator[PdsRecords]:
    """one client across passes, as a worker process would keep it."""
    client = pds_client(settings_of(world))
    yield client
    await client.aclose()


def settings_of(world: ReconcileWorld) -> Settings:
    return world.settings(pds_timeout_seconds=0.3)


async def test_a_pass_does_not_read_again_what_the_last_refused(
    world: ReconcileWorld, shared_client: PdsRecords
) -> None:
    """before: 40 such records turned a 0.4 s pass into 28.8 s, every pass."""
    hostile = list_record_value([world.playlists["carol0"].track_uris[0]] * 9_000)
    for name in ("carol0", "carol1"):
        playlist = world.playlists[name]
        assert playlist.uri is not None
        assert playlist.cid is not None
        world.bad.put(playlist.uri, playlist.cid, hostile)
    async with running_parts(settings_of(world)) as (services, docket):
        first = await pass_and_drain(services, docket, pds=shared_client)
        second = await pass_and_drain(services, docket, pds=shared_client)
    assert first.counts["failed:too_large"] == 2
    assert second.counts["failed:record_failing"] == 2
    assert world.bad.requests["getRecord"] == 2
    assert first.counts["enqueued:cold"] == 1  # bob0: his host is not held against him


async def test_a_pass_does_not_wait_again_for_a_host_that_hung(
    world: ReconcileWorld, shared_client: PdsRecords
) -> None:
    world.bad.fault = "stall"
    async with running_parts(settings_of(world)) as (services, docket):
        first = await pass_and_drain(services, docket, pds=shared_client)
        second = await pass_and_drain(services, docket, pds=shared_client)
    assert first.counts["failed:timeout"] == 1
    assert first.counts["failed:host_failing"] == 1
    assert second.counts["failed:host_failing"] == 2
    assert world.bad.requests["getRecord"] == 1


class Ticking:
    """a clock that moves 15 s each time it is read: a host that is slow to answer."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 15.0
        return self.now


async def test_a_slow_host_gets_its_time_in_a_pass_and_is_remembered_slow() -> None:
    """before: a slow PDS with an endless cursor held a pass for 97 s (finding 9)."""
    async with LoopbackPds() as pds:
        wanted = []
        for n in range(4):
            record_uri = f"at://{CAROL}/fm.plyr.list/3mslow{n}222222"
            pds.put(record_uri, "bafyreic" + "c" * 51, list_record_value([URI_OF[1 + n]]))
            wanted.append(record_uri)
        client = PdsRecords(
            limits=RecordLimits(), list_collection="fm.plyr.list", allow_private=True
        )
        try:
            records = PassRecords(
                client, per_host=1, total=4, list_threshold=10, host_seconds=20.0, clock=Ticking()
            )
            results = await records.read([WantedRecord(uri, pds.url, CAROL) for uri in wanted])
            reasons = sorted(getattr(result, "reason", "read") for result in results.values())
            assert reasons == ["host_failing", "host_failing", "read", "read"]
            assert pds.requests["getRecord"] == 2
            assert client.failing(pds.url) == "slow"
        finally:
            await client.aclose()


async def test_a_listing_too_big_to_decode_is_read_record_by_record() -> None:
    """one hostile record in an owner's listing costs its own record, not the others'."""
    async with LoopbackPds() as pds:
        wanted = [f"at://{CAROL}/fm.plyr.list/3mlist{n}222222" for n in range(3)]
        for n, record_uri in enumerate(wanted[:2]):
            pds.put(record_uri, "bafyreic" + "c" * 51, list_record_value([URI_OF[1 + n]]))
        # ~480 KB of `[], `: under both byte bounds, past any page's structure
        pds.put(wanted[2], "bafyreic" + "c" * 51, {"items": [[] for _ in range(120_000)]})
        client = PdsRecords(
            limits=RecordLimits(), list_collection="fm.plyr.list", allow_private=True
        )
        try:
            records = PassRecords(client, per_host=1, total=4)
            results = await records.read([WantedRecord(uri, pds.url, CAROL) for uri in wanted])
            again = await records.read([WantedRecord(wanted[2], pds.url, CAROL)])
        finally:
            await client.aclose()
    assert [getattr(results[uri], "track_uris", None) for uri in wanted[:2]] == [
        (URI_OF[1],),
        (URI_OF[2],),
    ]
    assert getattr(results[wanted[2]], "reason", None) == "too_complex"
    assert getattr(again[wanted[2]], "reason", None) == "record_failing"
    assert pds.requests == {"listRecords": 1, "getRecord": 3}
    assert client.failing(pds.url) is None


async def test_each_page_gives_a_host_its_time_anew() -> None:
    """a big honest host serves playlists on every page of a long pass: its time is
    counted per page's reads, not from the pass's first request."""
    async with LoopbackPds() as pds:
        wanted = []
        for n in range(3):
            record_uri = f"at://{CAROL}/fm.plyr.list/3mpage{n}222222"
            pds.put(record_uri, "bafyreic" + "c" * 51, list_record_value([URI_OF[1 + n]]))
            wanted.append(WantedRecord(record_uri, pds.url, CAROL))
        client = PdsRecords(
            limits=RecordLimits(), list_collection="fm.plyr.list", allow_private=True
        )
        try:
            records = PassRecords(client, per_host=1, total=4, host_seconds=20.0, clock=Ticking())
            pages = [await records.read([item]) for item in wanted]
        finally:
            await client.aclose()
    read = [page[item.record_uri] for page, item in zip(pages, wanted, strict=True)]
    assert all(hasattr(result, "track_uris") for result in read)
    assert pds.requests["getRecord"] == 3


async def test_a_record_refused_in_a_listing_is_not_listed_again() -> None:
    async with LoopbackPds() as pds:
        wanted = [f"at://{CAROL}/fm.plyr.list/3mlisted{n}2222" for n in range(3)]
        for record_uri in wanted:
            pds.put(record_uri, "bafyreic" + "c" * 51, list_record_value([URI_OF[1]] * 501))
        client = PdsRecords(
            limits=RecordLimits(), list_collection="fm.plyr.list", allow_private=True
        )
        try:
            records = PassRecords(client, per_host=1, total=4)
            first = await records.read([WantedRecord(uri, pds.url, CAROL) for uri in wanted])
            second = await records.read([WantedRecord(uri, pds.url, CAROL) for uri in wanted])
        finally:
            await client.aclose()
    assert {getattr(result, "reason", None) for result in first.values()} == {"too_many_items"}
    assert {getattr(result, "reason", None) for result in second.values()} == {"record_failing"}
    assert pds.requests == {"listRecords": 1}
