"""the resolver under many callers at once, against a local PLC directory: one fetch
per DID however many requests want it, and a bounded number of fetches in flight
(a flood of tokens naming slow or unknown identities costs a bounded amount)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.support.did_server import Identity, PlcDirectory
from tests.support.jetstream_world import eventually
from worker.did_resolver import CachedDidResolver, DidResolutionError

TIMEOUT = 0.5


@pytest.fixture
async def plc() -> AsyncIterator[PlcDirectory]:
    async with PlcDirectory() as directory:
        yield directory


async def resolver_for(plc: PlcDirectory, **limits: int) -> CachedDidResolver:
    return CachedDidResolver(plc_directory_url=plc.url, timeout_seconds=TIMEOUT, **limits)


async def test_callers_of_one_moment_share_one_fetch(plc: PlcDirectory) -> None:
    alice = plc.publish(Identity.generate("k256"))
    resolver = await resolver_for(plc)
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
    resolver = await resolver_for(plc)
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
    resolver = await resolver_for(plc)
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
    resolver = await resolver_for(plc, max_plc_fetches=2)
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
    resolver = await resolver_for(plc)
    waiting = asyncio.create_task(resolver.signing_key(alice.did))
    await eventually(lambda: plc.requests_for(alice.did) == 1)
    await resolver.aclose()
    with pytest.raises(asyncio.CancelledError):
        await waiting
