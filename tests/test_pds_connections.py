"""the PDS client keeps its connections for the next burst of reads (issue 20): a
reconcile pass reads records in bursts of up to PDS_MAX_IN_FLIGHT at once, and a
connection closed after one burst is a new TCP (in production, TLS) handshake in
the next. the real client against a loopback PDS that notes each request's
connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bench.loopback.pds import LoopbackPds, list_record_value
from jetstream.records import RecordLimits
from tests.support.jetstream_world import did, track_uri
from worker.identity.pds import MAX_CONNECTIONS, PdsRecords

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

COLLECTION = "fm.plyr.list"
CID = "bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
BURST = 20  # more than the 8 connections the client used to keep, fewer than it may open
BURSTS = 4
URIS = [f"at://{did(1)}/{COLLECTION}/3mburst{n:07d}" for n in range(BURST)]


@pytest.fixture
async def pds() -> AsyncIterator[LoopbackPds]:
    # a little latency, so that every read of a burst is in flight at once
    async with LoopbackPds(latency=(0.02, 0.02)) as server:
        for uri in URIS:
            server.put(uri, CID, list_record_value([track_uri(1)]))
        yield server


async def test_bursts_of_reads_reuse_their_connections(pds: LoopbackPds) -> None:
    assert BURST <= MAX_CONNECTIONS
    client = PdsRecords(limits=RecordLimits(), list_collection=COLLECTION, allow_private=True)
    try:
        for _ in range(BURSTS):
            records = await asyncio.gather(*(client.fetch(pds.url, uri) for uri in URIS))
            assert all(record.cid == CID for record in records)
            await asyncio.sleep(0.05)  # a pause between two bursts, as between two chunks
    finally:
        await client.aclose()
    assert pds.requests["getRecord"] == BURST * BURSTS
    # the first burst opens one connection per read; the later ones reuse them all
    # (keeping 8 of them, as before, opened 12 more in each later burst: 56 here)
    assert len(pds.peers) == BURST
