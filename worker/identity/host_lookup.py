"""name lookups for hosts that strangers name (did:web hosts, PDS hosts), off the thread pool.

`loop.getaddrinfo` runs the system resolver in the loop's default thread pool
(a handful of threads). a did:web token can name any host under a domain whose
name server never answers; each such lookup then holds a thread for the system
resolver's own ~10 s however soon our await gives up, so a trickle of tokens
starved every other lookup in the process: first-time users, PDS reads, database
reconnects (issue 16). so lookups go through c-ares (`aiodns`): asynchronous,
one event thread for all of them, and a timeout that really ends the query.

and still bounded, because a slow name server costs a query its whole timeout:
- `max_in_flight` lookups at once in all; past it a lookup fails at once;
- `max_per_source` at once per source, the name's registrable domain (the domain
  that chose to answer slowly; `worker.identity.sources`, by the public suffix list);
- a source that timed out, and a name that failed, are refused for
  `failure_cache_seconds` without asking again, so a flood of random names under
  one silent domain costs one query per source per that interval;
- an answer is kept for its TTL, at most `ANSWER_CACHE_SECONDS`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence

import aiodns
import aiodns.error

from worker.identity.sources import source_of

logger = logging.getLogger(__name__)

HostLookup = Callable[[str], Awaitable[list[str]]]

LOOKUP_TIMEOUT_SECONDS = 2.0  # c-ares: two tries of 1 s; real DNS answers in milliseconds
MAX_LOOKUPS_IN_FLIGHT = 64
MAX_LOOKUPS_PER_SOURCE = 2
FAILURE_CACHE_SECONDS = 30.0
MAX_REMEMBERED_FAILURES = 10_000
# an answer is reused this long (at most: a shorter DNS TTL wins), so a host asked
# for often (a big PDS) costs one query a minute, not one per request.
ANSWER_CACHE_SECONDS = 60.0
MAX_REMEMBERED_ANSWERS = 10_000


class LookupFailed(OSError):
    """no address for the name: `reason` is a short fixed word (timeout, no_name, busy...)."""

    def __init__(self, reason: str, host: str) -> None:
        super().__init__(f"looking up {host[:64]!r}: {reason}")
        self.reason = reason


class DnsLookup:
    """`await lookup(host)` -> its addresses (IPv4 and IPv6), or `LookupFailed`."""

    def __init__(
        self,
        *,
        nameservers: Sequence[str] | None = None,
        port: int | None = None,
        timeout_seconds: float = LOOKUP_TIMEOUT_SECONDS,
        max_in_flight: int = MAX_LOOKUPS_IN_FLIGHT,
        max_per_source: int = MAX_LOOKUPS_PER_SOURCE,
        failure_cache_seconds: float = FAILURE_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._nameservers = list(nameservers) if nameservers else None
        self._port = port
        self.timeout_seconds = timeout_seconds
        self.max_in_flight = max_in_flight
        self.max_per_source = max_per_source
        self.failure_cache_seconds = failure_cache_seconds
        self._clock = clock
        self._resolver: aiodns.DNSResolver | None = None
        self._in_flight: Counter[str] = Counter()  # source -> lookups under way
        # name or "source:<domain>" -> until when it is refused; insertion order is age.
        self._refused_until: dict[str, float] = {}
        self._answers: dict[str, tuple[list[str], float]] = {}  # name -> (addresses, until)
        self.counts: Counter[str] = Counter()

    @property
    def in_flight(self) -> int:
        return sum(self._in_flight.values())

    async def aclose(self) -> None:
        if self._resolver is not None:
            await self._resolver.close()
            self._resolver = None

    async def __call__(self, host: str) -> list[str]:
        name = host.lower().rstrip(".")
        source = source_of(name)
        now = self._clock()
        known = self._answers.get(name)
        if known is not None and now < known[1]:
            self.counts["answer_cached"] += 1
            return list(known[0])
        for key in (name, "source:" + source):
            until = self._refused_until.get(key)
            if until is not None and now < until:
                self.counts["refused_recent_failure"] += 1
                raise LookupFailed("failed_recently", host)
        if self.in_flight >= self.max_in_flight or self._in_flight[source] >= self.max_per_source:
            self.counts["busy"] += 1
            raise LookupFailed("busy", host)
        lookup = self._resolver_now().getaddrinfo(
            name, family=socket.AF_UNSPEC, type=socket.SOCK_STREAM
        )
        # the slot is held until c-ares itself ends the query, not until we stop waiting.
        self._in_flight[source] += 1
        lookup.add_done_callback(lambda _: self._release(source))
        try:
            async with asyncio.timeout(self.timeout_seconds + 1.0):
                result = await asyncio.shield(lookup)
        except TimeoutError as error:
            self._remember_failure("source:" + source)
            raise LookupFailed("timeout", host) from error
        except aiodns.error.DNSError as error:
            code = error.args[0] if error.args else None
            if code == aiodns.error.ARES_ETIMEOUT:
                self._remember_failure("source:" + source)
                raise LookupFailed("timeout", host) from error
            self._remember_failure(name)
            raise LookupFailed("no_name", host) from error
        self.counts["answered"] += 1
        addresses = [_text(node.addr[0]) for node in result.nodes]
        ttl = min([ANSWER_CACHE_SECONDS, *(float(node.ttl) for node in result.nodes)])
        if addresses and ttl > 0:
            self._answers.pop(name, None)
            self._answers[name] = (addresses, self._clock() + ttl)
            while len(self._answers) > MAX_REMEMBERED_ANSWERS:
                self._answers.pop(next(iter(self._answers)))
        return addresses

    def _resolver_now(self) -> aiodns.DNSResolver:
        if self._resolver is None:
            per_try = self.timeout_seconds / 2
            if self._port is None:
                self._resolver = aiodns.DNSResolver(self._nameservers, timeout=per_try, tries=2)
            else:  # a loopback name server on its own port (tests, benchmarks)
                self._resolver = aiodns.DNSResolver(
                    self._nameservers,
                    timeout=per_try,
                    tries=2,
                    udp_port=self._port,
                    tcp_port=self._port,
                )
        return self._resolver

    def _release(self, source: str) -> None:
        self._in_flight[source] -= 1
        if self._in_flight[source] <= 0:
            del self._in_flight[source]

    def _remember_failure(self, key: str) -> None:
        self.counts["failed"] += 1
        self._refused_until.pop(key, None)
        self._refused_until[key] = self._clock() + self.failure_cache_seconds
        while len(self._refused_until) > MAX_REMEMBERED_FAILURES:
            self._refused_until.pop(next(iter(self._refused_until)))


def _text(address: bytes | str) -> str:
    return address.decode() if isinstance(address, bytes) else address
