"""a PDS is someone else's server (issue 16): it must not send the API to other hosts,
and one that lies about a record's CID must not turn every request into a compute."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from jetstream.records import RecordLimits
from tests.support.jetstream_world import did, track_uri
from tests.support.pds_server import PdsServer, list_record
from worker.identity.pds import PdsRecords, RecordRejected
from worker.loopback.http import LoopbackHttpServer

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
async def internal() -> AsyncIterator[Internal]:
    async with Internal() as server:
        yield server


async def test_a_redirect_is_refused_never_followed(internal: Internal) -> None:
    """before: the SDK's client followed up to 3 redirects anywhere, and the body of
    `http://127.0.0.2:.../internal/admin?secret=1` came back as the record."""
    async with Redirecting(f"{internal.url}/internal/admin?secret=1") as pds:
        records = PdsRecords(
            limits=RecordLimits(), list_collection="fm.plyr.list", allow_private=True
        )
        try:
            with pytest.raises(RecordRejected, match="redirect"):
                await records.fetch(pds.url, RECORD_URI)
        finally:
            await records.aclose()
    assert internal.hits == []


class Recorded:
    """the transport under the guard: records what would leave, answers a record."""

    def __init__(self) -> None:
        self.sent: list[httpx.Request] = []

    def transport(self) -> httpx.MockTransport:
        def answer(request: httpx.Request) -> httpx.Response:
            self.sent.append(request)
            value = list_record([track_uri(1)])
            return httpx.Response(200, json={"uri": RECORD_URI, "cid": CID, "value": value})

        return httpx.MockTransport(answer)


def production_records(recorded: Recorded, *addresses: str) -> PdsRecords:
    async def lookup(host: str) -> list[str]:
        return list(addresses)

    return PdsRecords(
        limits=RecordLimits(),
        list_collection="fm.plyr.list",
        transport=recorded.transport(),
        host_addresses=lookup,
    )


@pytest.mark.parametrize(
    ("pds_url", "addresses", "reason"),
    [
        ("http://pds.example", ("93.184.216.34",), "not_https"),
        ("https://pds.example", ("127.0.0.1",), "private_address"),
        ("https://pds.example", ("93.184.216.34", "10.0.0.5"), "private_address"),
        ("https://pds.example", ("169.254.169.254",), "private_address"),
        ("https://10.0.0.5", (), "private_address"),
        ("https://[::1]:8443", (), "private_address"),
        ("https://pds.example", (), "private_address"),
    ],
)
async def test_outside_tests_a_pds_must_be_https_on_public_addresses(
    pds_url: str, addresses: tuple[str, ...], reason: str
) -> None:
    recorded = Recorded()
    records = production_records(recorded, *addresses)
    try:
        with pytest.raises(RecordRejected, match=reason):
            await records.fetch(pds_url, RECORD_URI)
    finally:
        await records.aclose()
    assert recorded.sent == []  # refused before anything left


async def test_a_public_pds_is_dialled_at_the_checked_address() -> None:
    recorded = Recorded()
    records = production_records(recorded, "93.184.216.34")
    try:
        record = await records.fetch("https://pds.example", RECORD_URI)
    finally:
        await records.aclose()
    assert record.track_uris == (track_uri(1),)
    [sent] = recorded.sent
    assert sent.url.host == "93.184.216.34"
    assert sent.headers["host"] == "pds.example"
    assert sent.extensions["sni_hostname"] == "pds.example"


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
