"""what strangers can make identity resolution cost everyone else (issue 16): did:web
hosts whose name servers never answer, documents built to be slow to parse, floods of
bogus did:plc tokens."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from worker.identity.did_resolver import CachedDidResolver, DidResolutionError
from worker.identity.host_lookup import DnsLookup
from worker.loopback.dns import LoopbackDns

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
        # one source gets two queries at a time; the rest failed at once as busy
        silent_names = [name for name in dns.queries if name.endswith("silent.example")]
        assert len(silent_names) == lookup.max_per_source
        assert lookup.counts["busy"] == 40 - lookup.max_per_source
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
