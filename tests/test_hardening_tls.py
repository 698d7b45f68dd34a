"""did:web hosts that accept TCP and never finish TLS, and per-source bounds by
registrable domain (issue 23, finding 6), through the resolver's `signing_key` with
its own HTTP client: real sockets, real TLS handshakes, routed to loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from bench.loopback.dns import LoopbackDns
from bench.loopback.silent_tls import Rerouted, SilentTlsHost
from tests.support.jetstream_world import eventually
from worker.identity.did_resolver import (
    MAX_WEB_FETCHES,
    MAX_WEB_FETCHES_PER_SOURCE,
    CachedDidResolver,
    DidResolutionError,
)
from worker.identity.handshake import HANDSHAKE_SECONDS
from worker.identity.host_lookup import DnsLookup
from worker.identity.resolution_budget import (
    MAX_WEB_IN_FLIGHT_PER_CLIENT,
    ClientBudget,
    GatedResolver,
)
from worker.identity.sources import source_of

PUBLIC = "93.184.216.34"  # what every name resolves to here; the route goes to loopback


async def public_address(host: str) -> list[str]:
    return [PUBLIC]


@pytest.fixture
async def silent() -> AsyncIterator[SilentTlsHost]:
    async with SilentTlsHost() as host:
        yield host


def resolver_to(host: SilentTlsHost, *, deadline: float) -> CachedDidResolver:
    return CachedDidResolver(
        plc_directory_url="http://127.0.0.1:9",
        timeout_seconds=deadline,
        host_addresses=public_address,
        network=Rerouted(host.port),
    )


async def test_a_handshake_cut_by_the_deadline_leaves_no_socket_open(
    silent: SilentTlsHost,
) -> None:
    """before: the deadline cancelled the handshake and httpcore never closed the
    socket: each token left one open after its request had given up."""
    resolver = resolver_to(silent, deadline=HANDSHAKE_SECONDS / 3)  # the deadline fires first
    try:
        results = await asyncio.gather(
            *(resolver.signing_key(f"did:web:h{n}.silent{n}.example") for n in range(3)),
            return_exceptions=True,
        )
        assert all(isinstance(r, DidResolutionError) and r.unreachable for r in results)
        assert silent.accepted == 3
        await eventually(lambda: silent.open == 0, within=5.0, what="the sockets closed")
    finally:
        await resolver.aclose()


async def test_the_handshake_has_its_own_bound_inside_the_deadline(
    silent: SilentTlsHost,
) -> None:
    """the handshake gives up at its own bound (httpx's ConnectTimeout), not at the
    fetch's deadline, and closes its socket."""
    resolver = resolver_to(silent, deadline=HANDSHAKE_SECONDS * 10)
    try:
        with pytest.raises(DidResolutionError, match="timed out") as error:
            await resolver.signing_key("did:web:someone.silent.example")
        assert isinstance(error.value.__cause__, httpx.ConnectTimeout)
        assert resolver.counts["failed:timeout"] == 1
        await eventually(lambda: silent.open == 0, within=5.0, what="the socket closed")
    finally:
        await resolver.aclose()


async def test_one_registrable_domain_gets_its_share_of_fetches_and_is_remembered_failing(
    silent: SilentTlsHost,
) -> None:
    """before: did:web fetches had one bound for all (8), so a trickle of tokens naming
    silent hosts under one domain held every slot."""
    resolver = resolver_to(silent, deadline=HANDSHAKE_SECONDS / 2)
    try:
        attack = [
            asyncio.create_task(resolver.signing_key(f"did:web:h{n}.evil.co.uk")) for n in range(6)
        ]
        await eventually(lambda: silent.accepted == MAX_WEB_FETCHES_PER_SOURCE)
        # another registrable domain under the same public suffix: still fetched
        neighbour = asyncio.create_task(resolver.signing_key("did:web:alice.fine.co.uk"))
        await eventually(lambda: silent.accepted == MAX_WEB_FETCHES_PER_SOURCE + 1)
        results = await asyncio.gather(*attack, neighbour, return_exceptions=True)
        assert all(isinstance(r, DidResolutionError) and r.unreachable for r in results)
        assert resolver.counts["failed:source_busy"] == 6 - MAX_WEB_FETCHES_PER_SOURCE
        # the domain timed out: refused without a connection for a while; its neighbour
        # timed out too (the same silent host stands in for both), so a third domain
        with pytest.raises(DidResolutionError, match="timed out lately"):
            await resolver.signing_key("did:web:again.evil.co.uk")
        assert silent.accepted == MAX_WEB_FETCHES_PER_SOURCE + 1
        with pytest.raises(DidResolutionError, match="timed out"):
            await resolver.signing_key("did:web:bob.other.co.uk")
        assert silent.accepted == MAX_WEB_FETCHES_PER_SOURCE + 2
    finally:
        await resolver.aclose()


async def test_a_silent_name_server_under_a_public_suffix_refuses_only_its_own_domain() -> None:
    """before: the source was the last two labels, so a silent `*.evil.co.uk` made
    every `*.co.uk` name refused for the failure interval."""
    async with LoopbackDns({"fine.co.uk": ["10.0.0.7"]}, silent=("evil.co.uk",)) as dns:
        lookup = DnsLookup(nameservers=["127.0.0.1"], port=dns.port, timeout_seconds=0.4)
        try:
            with pytest.raises(OSError, match="timeout"):
                await lookup("h1.evil.co.uk")
            assert await lookup("alice.fine.co.uk") == ["10.0.0.7"]
            with pytest.raises(OSError, match="failed_recently"):
                await lookup("h2.evil.co.uk")  # the silent domain itself is remembered
        finally:
            await lookup.aclose()


def test_sources_are_registrable_domains() -> None:
    assert source_of("a.b.evil.co.uk") == "evil.co.uk"
    assert source_of("Alice.GitHub.io.") == "alice.github.io"  # a private suffix counts
    assert source_of("morel.us-east.host.bsky.network") == "bsky.network"
    assert source_of("co.uk") == "co.uk"


async def test_one_client_holds_a_quarter_of_the_did_web_fetches_whatever_it_names(
    silent: SilentTlsHost,
) -> None:
    """before: tokens naming a fresh registrable domain each (so no per-domain share
    applies), within the client's rate, held the resolver's did:web fetches through
    handshakes that never end: first-time did:web users elsewhere were refused
    (`python -m bench abuse`, "did:web, TLS, many domains")."""
    resolver = resolver_to(silent, deadline=HANDSHAKE_SECONDS / 2)
    budget = ClientBudget(per_second=100.0, burst=100)  # the rate is not what binds here
    attacker = GatedResolver(resolver, budget, "203.0.113.9")
    try:
        attack = [
            asyncio.create_task(attacker.signing_key(f"did:web:h.domain{n}.example"))
            for n in range(MAX_WEB_FETCHES)
        ]
        await eventually(lambda: silent.accepted == MAX_WEB_IN_FLIGHT_PER_CLIENT)
        # someone else's first did:web sign-in still gets a fetch of its own
        person = GatedResolver(resolver, budget, "198.51.100.7")
        arrival = asyncio.create_task(person.signing_key("did:web:alice.fine.example"))
        await eventually(lambda: silent.accepted == MAX_WEB_IN_FLIGHT_PER_CLIENT + 1)
        results = await asyncio.gather(*attack, arrival, return_exceptions=True)
        assert all(isinstance(r, DidResolutionError) and r.unreachable for r in results)
        refused = [r for r in results[:-1] if "from this client" in str(r)]
        assert len(refused) == MAX_WEB_FETCHES - MAX_WEB_IN_FLIGHT_PER_CLIENT
        assert budget.refused == len(refused)
        assert not budget.web_in_flight  # every hold released, refused or failed
        # the attacker's fetches ended: it may try again (within its rate)
        with pytest.raises(DidResolutionError, match="timed out"):
            await attacker.signing_key("did:web:h.another.example")
    finally:
        await resolver.aclose()
