"""a PDS is someone else's server (issue 16): it must not send the API to other hosts,
and one that lies about a record's CID must not turn every request into a compute."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import redis.asyncio as aioredis
from aiohttp import web

from bench.loopback.http import LoopbackHttpServer
from bench.loopback.silent_tls import SilentTlsHost
from engine.cache import cache_key_pattern
from engine.memory_catalog import InMemoryCatalog
from jetstream.records import RecordLimits
from tests.support.api_world import (
    CID_1,
    EMPTY_ID,
    PDS_TRACKS,
    PUBLIC_ID,
    URI_OF,
    World,
    built_world,
    internal,
    running_api,
)
from tests.support.did_server import Identity, PlcDirectory
from tests.support.jetstream_world import did, track_uri
from tests.support.pds_server import PdsServer, list_record
from tests.support.world import sample_store
from worker.api.answers import AnswerLimits
from worker.api.app import SOURCE_HEADER
from worker.identity.pds import PdsRecords, RecordRejected
from worker.identity.pds_guard import PdsRefused, PinnedResolver

RECORD_URI = f"at://{did(1)}/fm.plyr.list/3m64hnzv42222"
CID = "bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


class Internal(LoopbackHttpServer):
    """a service on the private network that must never be reached through the API."""

    def __init__(self) -> None:
        self.hits: list[str] = []

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/{tail:.*}", self._any)

    async def _any(self, request: web.Request) -> web.StreamResponse:
        self.hits.append(str(request.rel_url))
        return web.json_response({"uri": RECORD_URI, "cid": CID, "value": list_record([])})


class Redirecting(LoopbackHttpServer):
    """a PDS answering every getRecord with a 302 to `target`."""

    def __init__(self, target: str) -> None:
        self.target = target

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/{tail:.*}", self._redirect)

    async def _redirect(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(self.target)


@pytest.fixture
async def private_service() -> AsyncIterator[Internal]:
    async with Internal() as server:
        yield server


async def test_a_redirect_is_refused_never_followed(private_service: Internal) -> None:
    """before: the SDK's client followed up to 3 redirects anywhere, and the body of
    `http://127.0.0.2:.../internal/admin?secret=1` came back as the record."""
    async with Redirecting(f"{private_service.url}/internal/admin?secret=1") as pds:
        records = PdsRecords(
            limits=RecordLimits(), list_collection="fm.plyr.list", allow_private=True
        )
        try:
            with pytest.raises(RecordRejected, match="redirect"):
                await records.fetch(pds.url, RECORD_URI)
        finally:
            await records.aclose()
    assert private_service.hits == []


class Lookup:
    """a name lookup answering `addresses` for every name, and noting the names."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = list(addresses)
        self.asked: list[str] = []

    async def __call__(self, host: str) -> list[str]:
        self.asked.append(host)
        return list(self.addresses)


@pytest.mark.parametrize(
    ("pds_url", "addresses", "reason"),
    [
        ("http://pds.example:{port}", ("93.184.216.34",), "not_https"),
        ("https://pds.example:{port}", ("127.0.0.1",), "private_address"),
        ("https://pds.example:{port}", ("93.184.216.34", "127.0.0.1"), "private_address"),
        ("https://pds.example:{port}", ("169.254.169.254",), "private_address"),
        ("https://pds.example:{port}", ("10.0.0.5",), "private_address"),
        ("https://127.0.0.1:{port}", (), "private_address"),
        ("https://10.0.0.5", (), "private_address"),
        ("https://[::1]:8443", (), "private_address"),
        ("https://pds.example:{port}", (), "private_address"),
    ],
)
async def test_outside_tests_a_pds_must_be_https_on_public_addresses(
    pds_url: str, addresses: tuple[str, ...], reason: str
) -> None:
    """the client as production builds it (no `allow_private`), its lookup answering
    `addresses`: refused by name, and nothing reached the loopback port a request
    to a private address would have dialled (a host that counts what connects)."""
    lookup = Lookup(*addresses)
    async with SilentTlsHost() as listener:
        records = PdsRecords(
            limits=RecordLimits(), list_collection="fm.plyr.list", host_addresses=lookup
        )
        try:
            with pytest.raises(RecordRejected, match=reason):
                await records.fetch(pds_url.format(port=listener.port), RECORD_URI)
        finally:
            await records.aclose()
        assert listener.accepted == 0
    # an address is judged as it is; a name by its lookup, unless not even https
    named = "pds.example" in pds_url and reason != "not_https"
    assert lookup.asked == (["pds.example"] if named else [])


async def test_a_name_is_dialled_at_the_address_its_lookup_gave() -> None:
    """the name reaches only the lookup: the connection goes to the address it gave
    (`pds.example` is in no real DNS), the name travels in the Host header."""
    lookup = Lookup("127.0.0.1")
    async with PdsServer() as pds:
        pds.put(RECORD_URI, CID, list_record([track_uri(1)]))
        records = PdsRecords(
            limits=RecordLimits(),
            list_collection="fm.plyr.list",
            host_addresses=lookup,
            allow_private=True,  # 127.0.0.1 is what the loopback test can dial
        )
        try:
            record = await records.fetch(f"http://pds.example:{pds.port}", RECORD_URI)
        finally:
            await records.aclose()
    assert record.track_uris == (track_uri(1),)
    assert lookup.asked == ["pds.example"]
    assert pds.hosts == [f"pds.example:{pds.port}"]


async def test_the_pinned_resolver_gives_the_checked_addresses_under_the_name() -> None:
    """what aiohttp dials (`host`) and the name it sends as the TLS server name and
    checks the certificate against (`hostname`)."""
    resolver = PinnedResolver(Lookup("93.184.216.34", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"))
    results = await resolver.resolve("pds.example", 443)
    assert [(r["hostname"], r["host"], r["port"]) for r in results] == [
        ("pds.example", "93.184.216.34", 443),
        ("pds.example", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", 443),
    ]
    assert [r["family"] for r in results] == [socket.AF_INET, socket.AF_INET6]
    with pytest.raises(PdsRefused, match="private_address"):
        await PinnedResolver(Lookup("93.184.216.34", "192.168.1.1")).resolve("pds.example", 443)
    loopback = await PinnedResolver(Lookup("127.0.0.1"), allow_private=True).resolve("x", 80)
    assert [r["host"] for r in loopback] == ["127.0.0.1"]


async def test_the_loopback_pds_still_serves_tests() -> None:
    async with PdsServer() as pds:
        pds.put(RECORD_URI, CID, list_record([track_uri(2)]))
        records = PdsRecords(
            limits=RecordLimits(), list_collection="fm.plyr.list", allow_private=True
        )
        try:
            assert (await records.fetch(pds.url, RECORD_URI)).cid == CID
        finally:
            await records.aclose()


# --- a PDS that lies about the CID -------------------------------------------------------


class LyingPds(PdsServer):
    """a PDS that names a new CID for the record on every read."""

    async def _get_record(self, request: web.Request) -> web.StreamResponse:
        for uri, (_, value) in list(self.records.items()):
            fresh = "bafyreic" + "".join("abcdefghij"[int(d)] for d in f"{len(self.requests):051d}")
            self.records[uri] = (fresh, value)
        return await super()._get_record(request)


@asynccontextmanager
async def lying_world(delay: float = 0.0) -> AsyncIterator[World]:
    async with PlcDirectory() as plc, LyingPds(delay=delay) as pds:
        world = World(plc.publish(Identity.generate()), plc.publish(Identity.generate()), pds, plc)
        for rkey in ("3mpublic22222", "3mempty222222"):
            pds.put(world.record_uri(rkey), CID_1, list_record([URI_OF[t] for t in PDS_TRACKS]))
        yield world


async def test_a_pds_lying_about_the_cid_costs_one_read_and_mints_no_cache_key(
    redis_client: aioredis.Redis,
) -> None:
    """before: each request cached under the CID the PDS named, so the database's
    version was never cached: 300 requests, 300 PDS reads, 300 computes, 300 new
    24 h keys, 0 hits."""
    store = sample_store()
    async with lying_world() as world, running_api(world, redis_client, store=store) as api:
        answers = [await api.get(PUBLIC_ID, internal(world.alice.did)) for _ in range(30)]
        keys = [key async for key in redis_client.scan_iter(cache_key_pattern(PUBLIC_ID))]
    assert {response.status_code for response in answers} == {200}
    assert len({response.content for response in answers}) == 1  # the same answer each time
    assert answers[0].json()["available"] is True
    assert answers[0].headers[SOURCE_HEADER] == "computed_uncached"
    assert {r.headers[SOURCE_HEADER] for r in answers[1:]} == {"pds_other_cid_recent"}
    assert len(world.pds.requests) == 1
    assert keys == []
    store_calls_of_one_compute = store.requests
    assert store_calls_of_one_compute <= 2


async def test_one_owner_cannot_take_every_inline_compute(redis_client: aioredis.Redis) -> None:
    limits = AnswerLimits(cache_retry_seconds=0.0, max_computes_per_owner=1)
    async with (
        lying_world(delay=0.3) as world,
        running_api(world, redis_client, store=sample_store(), limits=limits) as api,
    ):
        first, second = await asyncio.gather(
            api.get(PUBLIC_ID, internal(world.alice.did)),
            api.get(EMPTY_ID, internal(world.alice.did)),
        )
    sources = sorted(response.headers[SOURCE_HEADER] for response in (first, second))
    assert sources == ["busy", "computed_uncached"]


async def test_accounts_on_a_hanging_pds_cannot_take_the_inline_computes(
    redis_client: aioredis.Redis,
) -> None:
    """before: 8 accounts whose PDS never answers held all the compute slots (timeouts
    were not remembered, and only the owner was bounded): 27 of 30 legitimate misses
    answered `available: false` (busy). now one PDS host holds at most a few slots,
    and a host that timed out is refused at once until its backoff passes."""
    limits = AnswerLimits(
        cache_retry_seconds=0.0,
        max_concurrent_computes=4,
        max_computes_per_owner=100,  # the attacker's accounts are many: the host is the bound
        max_computes_per_pds_host=2,
    )
    async with built_world() as world, PdsServer(delay=5.0) as hanging:
        catalog_json = world.catalog_json()
        bob_playlists = []
        for index in range(6):
            playlist_id = f"b0b{index:05d}-0000-4000-8000-000000000000"
            uri = f"at://{world.bob.did}/fm.plyr.list/3mbobhang{index:04d}"
            catalog_json["playlists"].append(
                {
                    "id": playlist_id,
                    "owner_did": world.bob.did,
                    "name": f"hang {index}",
                    "atproto_record_uri": uri,
                    "atproto_record_cid": CID_1,
                }
            )
            bob_playlists.append(playlist_id)
        for artist in catalog_json["artists"]:
            if artist["did"] == world.bob.did:
                artist["pds_url"] = hanging.url
        catalog = InMemoryCatalog.from_json(catalog_json)
        async with running_api(
            world, redis_client, store=sample_store(), catalog=catalog, limits=limits
        ) as api:
            attack = [
                asyncio.create_task(api.get(playlist_id, internal(world.bob.did)))
                for playlist_id in bob_playlists
            ]
            await asyncio.sleep(0.1)  # the attacker's requests are in, waiting on the PDS
            legitimate = await api.get(PUBLIC_ID, internal(world.alice.did))
            assert legitimate.headers[SOURCE_HEADER] == "computed"
            sources = sorted(r.headers[SOURCE_HEADER] for r in await asyncio.gather(*attack))
            assert sources.count("busy") == 4  # past the host's 2 slots
            assert sources.count("pds_unreachable") == 2  # the 2 that waited timed out
            # the timeout is remembered: the next request is refused without a wait
            requests_before = len(hanging.requests)
            again = await api.get(bob_playlists[0], internal(world.bob.did))
            assert again.headers[SOURCE_HEADER] == "pds_unreachable"
            assert len(hanging.requests) == requests_before
