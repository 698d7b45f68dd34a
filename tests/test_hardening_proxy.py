"""who the client is behind a proxy (issue 23, finding 2), through the real API over
HTTP: uvicorn as `plyr-recs api` runs it, a local PLC directory, real tokens.

behind Fly's proxy every connection comes from the proxy: the identity budget, keyed
by the peer, was one budget for every user. now a configured header (`Fly-Client-IP`)
names the client, believed only from configured proxy addresses; `X-Forwarded-For` is
never read; and a returning user whose key merely expired keeps its grace when the
budget refuses a fresh lookup."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from starlette.datastructures import Headers

from tests.support.api_world import PUBLIC_ID, ROUTE, World, bearer, built_world, running_api
from tests.support.did_server import Identity
from tests.support.http_api import served_over_http
from tests.support.world import sample_store
from worker.api.client_address import ClientAddresses
from worker.identity.resolution_budget import NEW_LOOKUP_BURST, ClientBudget

FLY = "Fly-Client-IP"
ATTACKER = "203.0.113.66"


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with built_world() as built:
        yield built


@asynccontextmanager
async def http_api(
    world: World, redis: aioredis.Redis, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    async with running_api(world, redis, store=sample_store(), **settings) as api:
        # a budget whose clock stands still: no refill while the test's requests go by
        api.app.state.api.authenticator.budget = ClientBudget(clock=lambda: 1000.0)
        async with served_over_http(api.app) as client:
            yield client


async def ask(client: httpx.AsyncClient, who: Identity, **headers: str) -> int:
    response = await client.get(ROUTE.format(PUBLIC_ID), headers={**bearer(who), **headers})
    return response.status_code


def bogus(count: int) -> list[Identity]:
    return [Identity.generate() for _ in range(count)]  # never published: a 404 to look up


async def test_behind_the_proxy_each_client_has_its_own_budget(
    world: World, redis_client: aioredis.Redis
) -> None:
    """before: every request had the proxy's address, so one attacker's bogus tokens
    spent the budget of every first-time user."""
    people = [world.plc.publish(Identity.generate()) for _ in range(12)]
    attack = bogus(40)
    async with http_api(
        world, redis_client, api_client_ip_header=FLY, api_trusted_proxies=("127.0.0.1",)
    ) as client:
        statuses = [await ask(client, b, **{FLY: ATTACKER}) for b in attack]
        # first-time users, each from an address of their own, after the flood
        legit = [await ask(client, p, **{FLY: f"198.51.100.{n}"}) for n, p in enumerate(people)]
    assert statuses == [401] * len(attack)
    assert sum(world.plc.requests_for(b.did) for b in attack) == NEW_LOOKUP_BURST
    assert legit == [403] * len(people)  # signed in (not the owner of the playlist)
    assert all(world.plc.requests_for(p.did) == 1 for p in people)


async def test_a_forged_forwarded_for_is_not_a_new_client(
    world: World, redis_client: aioredis.Redis
) -> None:
    """before: uvicorn believed X-Forwarded-For from loopback, so a forged one per
    request made each bogus token a new client: every token cost a directory fetch."""
    attack = bogus(30)
    async with http_api(world, redis_client) as client:
        for n, b in enumerate(attack):
            await ask(client, b, **{"X-Forwarded-For": f"192.0.2.{n}"})
    assert sum(world.plc.requests_for(b.did) for b in attack) == NEW_LOOKUP_BURST


async def test_the_header_from_an_address_not_configured_as_a_proxy_is_ignored(
    world: World, redis_client: aioredis.Redis
) -> None:
    attack = bogus(30)
    async with http_api(
        world, redis_client, api_client_ip_header=FLY, api_trusted_proxies=("10.0.0.0/8",)
    ) as client:
        for n, b in enumerate(attack):
            await ask(client, b, **{FLY: f"192.0.2.{n}"})
    assert sum(world.plc.requests_for(b.did) for b in attack) == NEW_LOOKUP_BURST


async def test_a_returning_user_with_an_expired_key_is_served_when_the_budget_refuses(
    world: World, redis_client: aioredis.Redis
) -> None:
    """before: the budget refused before the resolver, so the stale-key grace never
    applied: a flood from one shared address (a NAT, a PDS proxy) logged out every
    returning user there once their key passed the cache's lifetime."""
    shared = {FLY: "198.51.100.7"}
    async with http_api(
        world,
        redis_client,
        api_client_ip_header=FLY,
        api_trusted_proxies=("127.0.0.1",),
        did_cache_seconds=0.0,  # every cached key has expired by the next request
    ) as client:
        assert await ask(client, world.alice, **shared) == 200  # the owner; her key fetched
        for b in bogus(NEW_LOOKUP_BURST + 5):
            assert await ask(client, b, **shared) == 401  # the shared budget is spent
        assert await ask(client, world.alice, **shared) == 200  # the stale key
        stranger = world.plc.publish(Identity.generate())
        assert await ask(client, stranger, **shared) == 401  # nothing cached: no grace
    assert world.plc.requests_for(world.alice.did) == 1
    assert world.plc.requests_for(stranger.did) == 0


def test_the_client_key() -> None:
    """pure logic: IPv6 clients by their /64, a repeated or malformed header ignored."""
    clients = ClientAddresses(header=FLY, trusted_proxies=["172.16.0.0/12", "::1"])
    proxy = "172.19.0.1"
    assert clients.client_of(proxy, {FLY: "2001:db8:1:2:3:4:5:6"}) == "2001:db8:1:2::/64"
    assert clients.client_of(proxy, {FLY: " 198.51.100.1 "}) == "198.51.100.1"
    assert clients.client_of("::1", {FLY: "::ffff:198.51.100.1"}) == "198.51.100.1"
    assert clients.client_of(proxy, {FLY: "not an address"}) == proxy
    assert clients.client_of(proxy, {}) == proxy
    assert clients.client_of("198.51.100.9", {FLY: "198.51.100.1"}) == "198.51.100.9"
    repeated = Headers(raw=[(b"fly-client-ip", b"198.51.100.1"), (b"fly-client-ip", b"1.2.3.4")])
    assert clients.client_of(proxy, repeated) == proxy
    assert clients.client_of(None, {FLY: "198.51.100.1"}) is None
    assert ClientAddresses().client_of("10.0.0.1", {FLY: "198.51.100.1"}) == "10.0.0.1"
