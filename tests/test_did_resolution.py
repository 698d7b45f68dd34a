"""the resolver under many callers at once, against a local PLC directory: one fetch
per DID however many requests want it, and a bounded number of fetches in flight
(a flood of tokens naming slow or unknown identities costs a bounded amount)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from tests.support.did_server import Identity, PlcDirectory
from tests.support.jetstream_world import eventually
from worker.identity.did_resolver import CachedDidResolver, DidResolutionError, public_addresses

TIMEOUT = 0.5


@pytest.fixture
async def plc() -> AsyncIterator[PlcDirectory]:
    async with PlcDirectory() as directory:
        yield directory


def resolver_for(plc: PlcDirectory, **limits: int) -> CachedDidResolver:
    return CachedDidResolver(plc_directory_url=plc.url, timeout_seconds=TIMEOUT, **limits)


async def test_callers_of_one_moment_share_one_fetch(plc: PlcDirectory) -> None:
    alice = plc.publish(Identity.generate("k256"))
    resolver = resolver_for(plc)
    try:
        keys = await asyncio.gather(*(resolver.signing_key(alice.did) for _ in range(20)))
        assert set(keys) == {f"did:key:{alice.public_key_multibase}"}
        assert plc.requests_for(alice.did) == 1
        assert resolver.counts["shared_fetch"] == 19
    finally:
        await resolver.aclose()


async def test_a_shared_fetch_that_fails_fails_each_caller_once(plc: PlcDirectory) -> None:
    alice = plc.publish(Identity.generate("k256"))
    plc.fault = "stall"
    resolver = resolver_for(plc)
    try:
        results = await asyncio.gather(
            *(resolver.signing_key(alice.did) for _ in range(10)), return_exceptions=True
        )
        assert all(isinstance(result, DidResolutionError) for result in results)
        assert plc.requests_for(alice.did) == 1
        assert resolver.counts["failed:timeout"] == 1
    finally:
        await resolver.aclose()


async def test_a_caller_giving_up_does_not_cancel_the_others_fetch(plc: PlcDirectory) -> None:
    alice = plc.publish(Identity.generate("k256"))
    resolver = resolver_for(plc)
    try:
        impatient = asyncio.create_task(resolver.signing_key(alice.did))
        patient = asyncio.create_task(resolver.signing_key(alice.did))
        await asyncio.sleep(0)
        impatient.cancel()
        assert (await patient).startswith("did:key:")
        assert impatient.cancelled()
        assert plc.requests_for(alice.did) == 1
    finally:
        await resolver.aclose()


async def test_past_the_budget_a_new_did_fails_at_once_instead_of_queueing(
    plc: PlcDirectory,
) -> None:
    people = [plc.publish(Identity.generate("k256")) for _ in range(3)]
    plc.fault = "stall"
    resolver = resolver_for(plc, max_plc_fetches=2)
    try:
        slow = [asyncio.create_task(resolver.signing_key(p.did)) for p in people[:2]]
        refused = asyncio.create_task(resolver.signing_key(people[2].did))
        done, _ = await asyncio.wait([refused, *slow], return_when=asyncio.FIRST_COMPLETED)
        assert done == {refused}  # it did not wait for the two stalled lookups
        with pytest.raises(DidResolutionError, match="too many did:plc lookups") as error:
            refused.result()
        assert error.value.unreachable  # an outage to the caller: a cached key keeps its grace
        assert plc.requests_for(people[2].did) == 0
        assert resolver.counts["failed:busy"] == 1
        for stalled in await asyncio.gather(*slow, return_exceptions=True):
            assert isinstance(stalled, DidResolutionError)
        # the budget is given back when the lookups end
        plc.fault = None
        assert (await resolver.signing_key(people[2].did)).startswith("did:key:")
    finally:
        await resolver.aclose()


async def test_closing_cancels_the_lookups_under_way(plc: PlcDirectory) -> None:
    alice = plc.publish(Identity.generate("k256"))
    plc.fault = "stall"
    resolver = resolver_for(plc)
    waiting = asyncio.create_task(resolver.signing_key(alice.did))
    await eventually(lambda: plc.requests_for(alice.did) == 1)
    await resolver.aclose()
    with pytest.raises(asyncio.CancelledError):
        await waiting


# --- did:web hosts that resolve inside a private network ------------------------------


def fixed_dns(*addresses: str) -> Callable[[str], Awaitable[list[str]]]:
    """what the system's resolver would answer, for any name (no DNS in tests)."""

    async def lookup(host: str) -> list[str]:
        return list(addresses)

    return lookup


class Recorded:
    """an HTTP client that records each request as it sets out (before DNS or connect)."""

    def __init__(self) -> None:
        self.sent: list[httpx.Request] = []
        # nothing leaves the machine: the addresses the tests give are public ones
        self.client = httpx.AsyncClient(
            event_hooks={"request": [self._record]},
            transport=httpx.MockTransport(lambda request: httpx.Response(404)),
        )

    async def _record(self, request: httpx.Request) -> None:
        self.sent.append(request)

    def web_resolver(self, lookup: Callable[[str], Awaitable[list[str]]]) -> CachedDidResolver:
        """a resolver for did:web (the PLC directory is unused) over this client."""
        return CachedDidResolver(
            plc_directory_url="http://127.0.0.1:9",
            timeout_seconds=TIMEOUT,
            host_addresses=lookup,
            http_client=self.client,
        )


@pytest.fixture
async def recorded() -> AsyncIterator[Recorded]:
    recorded = Recorded()
    yield recorded
    await recorded.client.aclose()


@pytest.mark.parametrize(
    "addresses",
    [
        ("127.0.0.1",),
        ("10.0.0.5",),
        ("192.168.1.1",),
        ("169.254.169.254",),  # the cloud metadata service
        ("100.64.0.1",),  # carrier-grade NAT, Fly.io's private network is near
        ("::1",),
        ("fdaa::3",),  # Fly.io's 6PN private addresses
        ("0.0.0.0",),
        ("93.184.216.34", "10.0.0.5"),  # one public, one private: still refused
        (),
    ],
)
async def test_a_public_name_for_a_private_address_is_never_fetched(
    addresses: tuple[str, ...], recorded: Recorded
) -> None:
    resolver = recorded.web_resolver(fixed_dns(*addresses))
    with pytest.raises(DidResolutionError, match="not on the public internet") as error:
        await resolver.signing_key("did:web:innocent-looking.example")
    assert not error.value.unreachable  # an answer, not an outage: no stale grace
    assert resolver.counts["failed:private_address"] == 1
    assert recorded.sent == []


async def test_a_public_address_is_fetched_and_a_dns_failure_is_an_outage(
    recorded: Recorded,
) -> None:
    public = recorded.web_resolver(fixed_dns("93.184.216.34", "2606:2800:220:1::1"))
    with pytest.raises(DidResolutionError):  # the stand-in host answers 404
        await public.signing_key("did:web:someone.test")
    # the checked address is dialled (no second lookup, no rebinding in between),
    # for the name: in the Host header and as the TLS server name
    [sent] = recorded.sent
    assert str(sent.url) == "https://93.184.216.34/.well-known/did.json"
    assert sent.headers["host"] == "someone.test"
    assert sent.extensions["sni_hostname"] == "someone.test"

    async def no_such_name(host: str) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    unresolvable = recorded.web_resolver(no_such_name)
    with pytest.raises(DidResolutionError) as error:
        await unresolvable.signing_key("did:web:gone.example")
    assert error.value.unreachable
    assert unresolvable.counts["failed:dns"] == 1
    assert len(recorded.sent) == 1


def test_only_public_addresses_pass() -> None:
    assert public_addresses(["93.184.216.34", "2606:2800:220:1::1"])
    assert not public_addresses([])
    assert not public_addresses(["not an address"])
    assert not public_addresses(["::ffff:127.0.0.1"])  # loopback, IPv4-mapped
