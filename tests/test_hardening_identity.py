"""what strangers can make identity resolution cost everyone else (issue 16): did:web
hosts whose name servers never answer, documents built to be slow to parse, floods of
bogus did:plc tokens."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bench.loopback.dns import LoopbackDns
from tests.support.did_server import Identity, PlcDirectory
from tests.support.jetstream_world import eventually
from worker.identity.auth import Authenticator, AuthError
from worker.identity.did_resolver import (
    MAX_PLC_FETCHES,
    RESERVED_FOR_KNOWN,
    CachedDidResolver,
    DidResolutionError,
)
from worker.identity.host_lookup import DnsLookup
from worker.identity.resolution_budget import NEW_LOOKUP_BURST, ClientBudget

TIMEOUT = 0.5


class CountingExecutor(concurrent.futures.ThreadPoolExecutor):
    """the loop's default thread pool, counting what is handed to it."""

    submitted = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        CountingExecutor.submitted += 1
        return super().submit(fn, *args, **kwargs)


@pytest.fixture
async def dns() -> AsyncIterator[LoopbackDns]:
    # fine.example answers with a private address: an answer the resolver then refuses,
    # so a refusal "not on the public internet" proves the lookup was made and answered.
    async with LoopbackDns({"fine.example": ["10.0.0.7"]}, silent=("silent.example",)) as server:
        yield server


async def test_did_web_hosts_whose_dns_never_answers_cost_only_their_own_requests(
    dns: LoopbackDns,
) -> None:
    """before: the host check was `loop.getaddrinfo`, a thread of the loop's default
    pool held for the system resolver's whole timeout, so a trickle of such tokens
    starved every lookup in the process. now lookups go through c-ares, never the
    thread pool, with a bound per source domain and a brief memory of failures."""
    loop = asyncio.get_running_loop()
    executor = CountingExecutor(max_workers=2)
    loop.set_default_executor(executor)
    CountingExecutor.submitted = 0
    lookup = DnsLookup(nameservers=["127.0.0.1"], port=dns.port, timeout_seconds=TIMEOUT)
    resolver = CachedDidResolver(
        plc_directory_url="http://127.0.0.1:9",
        timeout_seconds=TIMEOUT * 4,
        host_addresses=lookup,
    )
    try:
        attack = [
            asyncio.create_task(resolver.signing_key(f"did:web:h{n}.silent.example"))
            for n in range(40)
        ]
        await asyncio.sleep(0)
        # a legitimate did:web user of another domain, during the attack: looked up, answered
        with pytest.raises(DidResolutionError, match="not on the public internet"):
            await resolver.signing_key("did:web:someone.fine.example")
        results = await asyncio.gather(*attack, return_exceptions=True)
        assert all(
            isinstance(result, DidResolutionError) and result.unreachable for result in results
        )
        # one source gets two queries at a time; the rest failed at once as busy (since
        # issue 23 at the resolver's per-domain share of fetches, before any lookup)
        silent_names = [name for name in dns.queries if name.endswith("silent.example")]
        assert len(silent_names) == lookup.max_per_source
        busy = lookup.counts["busy"] + resolver.counts["failed:source_busy"]
        assert busy == 40 - lookup.max_per_source
        # and once it timed out the domain is refused without asking again for a while
        with pytest.raises(DidResolutionError):
            await resolver.signing_key("did:web:another.silent.example")
        assert "another.silent.example" not in dns.queries
        assert lookup.counts["refused_recent_failure"] == 1
        assert lookup.in_flight == 0  # c-ares ended the queries: nothing left holding a slot
        # not one lookup went through the loop's thread pool
        assert CountingExecutor.submitted == 0
    finally:
        await resolver.aclose()
        await lookup.aclose()
        executor.shutdown(wait=False)


@pytest.fixture
async def plc() -> AsyncIterator[PlcDirectory]:
    async with PlcDirectory() as directory:
        yield directory


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(
            lambda d: d["verificationMethod"][0].update(publicKeyMultibase="z" + "2" * 10_000),
            id="huge-key",
        ),
        pytest.param(lambda d: d.update(alsoKnownAs=["at://x.test"] * 100), id="many-handles"),
        pytest.param(
            lambda d: d["verificationMethod"].extend([d["verificationMethod"][0]] * 20),
            id="many-methods",
        ),
        pytest.param(
            lambda d: d["service"][0].update(serviceEndpoint={"a": "x" * 5_000}), id="huge-endpoint"
        ),
    ],
)
async def test_a_document_built_to_be_slow_to_decode_is_refused_undecoded_and_remembered(
    plc: PlcDirectory, mutate: Callable[[dict[str, Any]], None]
) -> None:
    """before: a 60,000-character base58 key was decoded on the event loop (0.24 s
    each, superlinear), and the refusal was not remembered, so every request paid again.
    (the key here is 10,000 characters: the 16 KiB document bound refuses a 60,000 one.)"""
    mallory = Identity.generate("k256")
    document = mallory.document()
    mutate(document)
    plc.documents[mallory.did] = document
    resolver = CachedDidResolver(plc_directory_url=plc.url, timeout_seconds=TIMEOUT)
    try:
        for _ in range(5):
            with pytest.raises(DidResolutionError, match="unusable") as error:
                await resolver.signing_key(mallory.did)
            assert not error.value.unreachable  # an answer: no stale grace
        assert plc.requests_for(mallory.did) == 1  # the refusal is remembered
        assert resolver.counts["refusal_cached"] == 4
        refused = [reason for reason in resolver.counts if reason.startswith("failed:")]
        assert refused in (["failed:oversized_field"], ["failed:too_many_entries"])
    finally:
        await resolver.aclose()


async def test_a_real_document_still_resolves_and_a_refusal_is_forgotten_in_time(
    plc: PlcDirectory,
) -> None:
    now = [0.0]
    alice = Identity.generate("p256")
    resolver = CachedDidResolver(
        plc_directory_url=plc.url, timeout_seconds=TIMEOUT, clock=lambda: now[0]
    )
    try:
        with pytest.raises(DidResolutionError):
            await resolver.signing_key(alice.did)  # not registered yet: 404
        plc.publish(alice)
        with pytest.raises(DidResolutionError):
            await resolver.signing_key(alice.did)  # the 404 is remembered a while
        now[0] += 61
        assert await resolver.signing_key(alice.did) == f"did:key:{alice.public_key_multibase}"
        assert plc.requests_for(alice.did) == 2
    finally:
        await resolver.aclose()


# --- floods of bogus did:plc tokens ---------------------------------------------------------

SERVICE_DID = "did:web:recs.plyr.test"


def token_of(identity: Identity, now: float) -> dict[str, str]:
    return {"Authorization": f"Bearer {identity.service_jwt(aud=SERVICE_DID, now=now)}"}


def authenticator(plc: PlcDirectory, clock: Callable[[], float]) -> Authenticator:
    resolver = CachedDidResolver(plc_directory_url=plc.url, timeout_seconds=TIMEOUT, clock=clock)
    auth = Authenticator(
        service_did=SERVICE_DID, internal_api_token=None, resolver=resolver, clock=clock
    )
    auth.budget = ClientBudget(clock=clock)
    return auth


async def test_a_flood_of_bogus_dids_costs_its_client_budget_not_everyone_elses(
    plc: PlcDirectory,
) -> None:
    """before: 20,000 distinct bogus DIDs were 20,002 directory fetches, and 7 of 15
    real first-time users were refused as busy among them."""
    now = [1_000_000.0]
    auth = authenticator(plc, lambda: now[0])
    people = [plc.publish(Identity.generate()) for _ in range(15)]
    bogus = [Identity.generate() for _ in range(300)]  # never published: 404
    try:
        attack = [auth.authenticate(token_of(b, now[0]), "10.9.9.9") for b in bogus]
        # real users arrive through their PDSes: a few addresses, a few new users each
        legit = [
            auth.authenticate(token_of(p, now[0]), f"10.0.0.{n % 3}") for n, p in enumerate(people)
        ]
        results = await asyncio.gather(*attack, *legit, return_exceptions=True)
        assert results[300:] == [p.did for p in people]  # every real user got in
        refused = results[:300]
        assert all(isinstance(r, AuthError) and r.reason == "unresolvable" for r in refused)
        fetched = sum(plc.requests_for(b.did) for b in bogus)
        assert fetched == NEW_LOOKUP_BURST  # the attacker's budget, then nothing
        assert auth.budget.refused == 300 - NEW_LOOKUP_BURST
        # again, a moment later: the refusals are remembered, the rest still over budget
        for b in bogus[:NEW_LOOKUP_BURST]:
            with pytest.raises(AuthError):
                await auth.authenticate(token_of(b, now[0]), "10.9.9.9")
        assert sum(plc.requests_for(b.did) for b in bogus) == fetched
    finally:
        await auth.aclose()


async def test_a_429_from_the_directory_is_honoured_and_known_dids_keep_a_share(
    plc: PlcDirectory,
) -> None:
    now = [1_000_000.0]
    resolver = CachedDidResolver(
        plc_directory_url=plc.url, timeout_seconds=TIMEOUT, clock=lambda: now[0]
    )
    alice = plc.publish(Identity.generate())
    strangers = [plc.publish(Identity.generate()) for _ in range(3)]
    try:
        await resolver.signing_key(alice.did)  # known from now on
        plc.fault = "rate_limited"
        with pytest.raises(DidResolutionError) as error:
            await resolver.signing_key(strangers[0].did)
        assert error.value.unreachable
        plc.fault = None
        # within its Retry-After (30 s) nothing more is asked of the directory
        with pytest.raises(DidResolutionError, match="slow down"):
            await resolver.signing_key(strangers[1].did)
        assert plc.requests_for(strangers[1].did) == 0
        assert await resolver.signing_key(alice.did)  # cached: untouched by the back-off
        now[0] += 31
        assert await resolver.signing_key(strangers[1].did)

        # 40 new DIDs take at most 32 - 8 fetches (before: all 32): a known DID still gets one
        plc.fault = "stall"
        never_seen = [
            asyncio.create_task(resolver.signing_key(Identity.generate().did)) for _ in range(40)
        ]
        await asyncio.sleep(0.05)
        now[0] += 10_000  # alice's key is long expired: she needs a fetch
        refresh = asyncio.create_task(resolver.signing_key(alice.did))
        await eventually(lambda: plc.requests_for(alice.did) == 2)  # fetched, and stalled
        plc.fault = None
        results = await asyncio.gather(*never_seen, return_exceptions=True)
        busy = [r for r in results if isinstance(r, DidResolutionError) and "too many" in str(r)]
        assert len(busy) == 40 - (MAX_PLC_FETCHES - RESERVED_FOR_KNOWN)
        with pytest.raises(DidResolutionError, match="timed out"):
            await refresh  # it was fetched (and stalled like the rest), not refused as busy
        assert plc.requests_for(alice.did) == 2
    finally:
        await resolver.aclose()


async def test_an_answer_is_reused_so_a_busy_host_costs_one_query() -> None:
    """PDS hosts are few and asked for often: their answer is kept (its TTL, at most a
    minute) instead of asking on every request under the per-source bound."""
    async with LoopbackDns({"host.bsky.network": ["93.184.216.34"]}) as server:
        lookup = DnsLookup(nameservers=["127.0.0.1"], port=server.port, timeout_seconds=TIMEOUT)
        try:
            answers = [await lookup("morel.us-east.host.bsky.network")]
            answers += await asyncio.gather(
                *(lookup("morel.us-east.host.bsky.network") for _ in range(20))
            )
        finally:
            await lookup.aclose()
    assert all(answer == ["93.184.216.34"] for answer in answers)
    assert server.queries["morel.us-east.host.bsky.network"] == 2  # one A, one AAAA
    assert lookup.counts["answer_cached"] == 20
