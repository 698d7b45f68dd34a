"""a PDS's answer is bounded before it is parsed, and a failing PDS is remembered
(issue 23, findings 1 and 5): the client on a loopback PDS serving hostile answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bench.loopback.pds import LoopbackPds, list_record_value
from jetstream.records import RecordLimits
from tests.support.jetstream_world import did, eventually, track_uri
from worker.identity.pds import (
    HOST_FAILING,
    RECORD_FAILING,
    PdsRecords,
    RecordRejected,
    RecordUnavailable,
    pds_host,
)
from worker.identity.pds_backoff import Backoff, Scope, scope_of

pytestmark = pytest.mark.timeout(60)

OWNER = did(1)
COLLECTION = "fm.plyr.list"
CID = "bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
TRACKS = [track_uri(n) for n in range(1, 501)]  # a full list: the bound on items


def uri(rkey: str) -> str:
    return f"at://{OWNER}/{COLLECTION}/{rkey}"


GOOD, HOSTILE = uri("3mgood2222222"), uri("3mhostile2222")


class Clock:
    """a clock the test moves (the client's backoff reads it)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def pds() -> AsyncIterator[LoopbackPds]:
    async with LoopbackPds() as server:
        server.put(GOOD, CID, list_record_value(TRACKS))
        yield server


@pytest.fixture
async def client(clock: Clock) -> AsyncIterator[PdsRecords]:
    records = PdsRecords(
        limits=RecordLimits(),
        list_collection=COLLECTION,
        timeout_seconds=0.4,
        allow_private=True,
        backoff=Backoff(first_seconds=10.0, max_seconds=60.0),
        clock=clock,
    )
    yield records
    await records.aclose()


async def test_a_valid_record_reads_as_it_did_through_the_sdk(
    pds: LoopbackPds, client: PdsRecords
) -> None:
    record = await client.fetch(pds.url, GOOD)
    assert record.track_uris == tuple(TRACKS)
    assert record.cid == CID
    # the same record through listRecords, and a base URL given with its /xrpc (as the SDK took)
    page, cursor = await client.list_page(f"{pds.url}/xrpc", OWNER)
    assert page == {GOOD: record}
    assert cursor is None


def oversized() -> dict[str, object]:
    """~0.8 MB of plausible items: the answer that cost 0.6 s of CPU in the SDK's models."""
    return list_record_value([track_uri(n % 500 + 1) for n in range(9_000)])


HOSTILE_RECORDS = {
    "too_large": oversized,
    # small enough to be read, one item past the bound
    "too_many_items": lambda: list_record_value([track_uri(n % 500 + 1) for n in range(501)]),
    # ~300 KB of `[],`: cheap to send, ~30 ms for orjson to build
    "too_complex": lambda: {"$type": COLLECTION, "items": [[] for _ in range(100_000)]},
}


@pytest.mark.parametrize("reason", sorted(HOSTILE_RECORDS))
async def test_a_hostile_record_is_refused_then_not_read_again(
    pds: LoopbackPds, client: PdsRecords, clock: Clock, reason: str
) -> None:
    pds.put(HOSTILE, CID, HOSTILE_RECORDS[reason]())
    with pytest.raises(RecordRejected, match=reason):
        await client.fetch(pds.url, HOSTILE)
    assert pds.requests["getRecord"] == 1
    # asked again (the attacker asks twice a second): refused without a request
    for _ in range(5):
        with pytest.raises(RecordRejected, match=RECORD_FAILING):
            await client.fetch(pds.url, HOSTILE)
    assert pds.requests["getRecord"] == 1
    # only that record: one user's record must not shut out everyone on their (big) host
    assert client.failing(pds.url) is None
    assert (await client.fetch(pds.url, GOOD)).cid == CID
    # after the backoff, it is read again (and refused again, for twice as long)
    clock.now += 10.5
    with pytest.raises(RecordRejected, match=reason):
        await client.fetch(pds.url, HOSTILE)
    clock.now += 10.5
    with pytest.raises(RecordRejected, match=RECORD_FAILING):
        await client.fetch(pds.url, HOSTILE)
    assert pds.requests["getRecord"] == 3


async def test_an_edited_record_is_read_afresh(pds: LoopbackPds, client: PdsRecords) -> None:
    """the memory of a refused record is per version when the caller names plyr.fm's:
    an owner who fixes an oversized playlist is not kept waiting for its backoff."""
    pds.put(HOSTILE, CID, HOSTILE_RECORDS["too_many_items"]())
    with pytest.raises(RecordRejected, match="too_many_items"):
        await client.fetch(pds.url, HOSTILE, version="bafyreiold")
    with pytest.raises(RecordRejected, match=RECORD_FAILING):
        await client.fetch(pds.url, HOSTILE, version="bafyreiold")
    pds.put(HOSTILE, CID, list_record_value(TRACKS[:3]))  # the owner's edit
    record = await client.fetch(pds.url, HOSTILE, version="bafyreinew")
    assert record.track_uris == tuple(TRACKS[:3])
    assert pds.requests["getRecord"] == 2


HOST_FAULTS = {
    "stall": (RecordUnavailable, "timeout"),  # never answers
    "drip": (RecordUnavailable, "timeout"),  # a byte every 50 ms: each socket read is quick
    "garbage": (RecordRejected, "bad_response"),
    "error": (RecordUnavailable, "status_5xx"),
    "rate_limited": (RecordUnavailable, "rate_limited"),
    "encoded": (RecordRejected, "bad_encoding"),  # gzip: could inflate far past the bound
}


@pytest.mark.parametrize("fault", sorted(HOST_FAULTS))
async def test_a_failing_host_is_remembered_for_every_record_and_listing(
    pds: LoopbackPds, client: PdsRecords, clock: Clock, fault: str
) -> None:
    pds.fault = fault  # type: ignore[assignment]
    error, reason = HOST_FAULTS[fault]
    with pytest.raises(error, match=reason):
        await client.fetch(pds.url, GOOD)
    assert client.failing(pds.url) == reason
    # another record, and the reconcile loop's listing, on the same host: refused at once
    with pytest.raises(RecordUnavailable, match=HOST_FAILING):
        await client.fetch(pds.url, HOSTILE)
    with pytest.raises(RecordUnavailable, match=HOST_FAILING):
        await client.list_page(pds.url, OWNER)
    assert sum(pds.requests.values()) == 1
    # the host mends; once the backoff has passed it is asked again, and forgotten
    pds.fault = None
    clock.now += 10.5
    assert client.failing(pds.url) is None
    assert (await client.fetch(pds.url, GOOD)).cid == CID
    assert len(client.failures) == 0


async def test_a_listing_that_fails_marks_the_host_for_getrecord_too(
    pds: LoopbackPds, client: PdsRecords
) -> None:
    pds.fault = "stall"
    with pytest.raises(RecordUnavailable, match="timeout"):
        await client.list_page(pds.url, OWNER)
    with pytest.raises(RecordUnavailable, match=HOST_FAILING):
        await client.fetch(pds.url, GOOD)
    assert pds.requests["listRecords"] == 1
    assert pds.requests["getRecord"] == 0


async def test_after_the_backoff_one_probe_at_a_time_reaches_a_hanging_host(
    pds: LoopbackPds, client: PdsRecords, clock: Clock
) -> None:
    """before: every request waited out the whole timeout, so a few accounts with a
    hanging PDS held every inline compute slot (finding 5)."""
    pds.fault = "stall"
    with pytest.raises(RecordUnavailable, match="timeout"):
        await client.fetch(pds.url, GOOD)
    clock.now += 10.5
    outcomes = await asyncio.gather(
        *(client.fetch(pds.url, GOOD) for _ in range(8)), return_exceptions=True
    )
    reasons = sorted(str(outcome) for outcome in outcomes)
    assert reasons == [HOST_FAILING] * 7 + ["timeout"]
    assert pds.requests["getRecord"] == 2
    # the probe failed: the host waits twice as long now
    clock.now += 10.5
    assert client.failing(pds.url) == "timeout"
    clock.now += 10.0
    assert client.failing(pds.url) is None


async def test_a_cancelled_probe_leaves_the_host_to_the_next_request(
    pds: LoopbackPds, client: PdsRecords, clock: Clock
) -> None:
    pds.fault = "stall"
    with pytest.raises(RecordUnavailable, match="timeout"):
        await client.fetch(pds.url, GOOD)
    clock.now += 10.5
    probe = asyncio.ensure_future(client.fetch(pds.url, GOOD))
    await eventually(lambda: pds.requests["getRecord"] == 2, what="the probe at the PDS")
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    pds.fault = None
    assert (await client.fetch(pds.url, GOOD)).cid == CID


async def test_the_memory_keeps_the_most_recent_failures_only(clock: Clock) -> None:
    client = PdsRecords(
        limits=RecordLimits(),
        list_collection=COLLECTION,
        timeout_seconds=0.4,
        allow_private=True,
        backoff=Backoff(max_remembered=2),
        clock=clock,
    )
    servers = [LoopbackPds(fault="error") for _ in range(3)]
    try:
        for server in servers:
            await server.start()
            with pytest.raises(RecordUnavailable, match="status_5xx"):
                await client.fetch(server.url, GOOD)
        assert len(client.failures) == 2
        assert [client.failing(server.url) for server in servers] == [
            None,
            "status_5xx",
            "status_5xx",
        ]
    finally:
        for server in servers:
            await server.stop()
        await client.aclose()


def test_the_host_of_a_pds_url_is_its_origin() -> None:
    assert pds_host("https://Morel.us-east.host.bsky.network/") == (
        "morel.us-east.host.bsky.network"
    )
    assert pds_host("http://127.0.0.1:8080/xrpc") == "127.0.0.1:8080"


def test_the_backoff_doubles_to_its_bound_and_sorts_faults() -> None:
    backoff = Backoff(first_seconds=10.0, max_seconds=600.0)
    assert [backoff.seconds(n) for n in (1, 2, 3, 7, 1_000)] == [10.0, 20.0, 40.0, 600.0, 600.0]
    # a record's owner may fix it any moment: it waits a minute at most
    assert [backoff.seconds(n, Scope.RECORD) for n in (1, 3, 4, 9)] == [10.0, 40.0, 60.0, 60.0]
    assert scope_of("timeout") is Scope.HOST
    assert scope_of("bad_response") is Scope.HOST
    assert scope_of("too_many_items") is Scope.RECORD
    assert scope_of("too_large") is Scope.RECORD
    assert scope_of("not_found") is None  # an answer, not a fault
    assert scope_of("album") is None
    with pytest.raises(ValueError, match="ordered"):
        Backoff(first_seconds=5.0, max_seconds=1.0)
