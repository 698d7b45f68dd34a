"""how many identities one client may have us look up: a budget in front of resolution.

a token naming a DID we have never resolved costs a fetch from plc.directory
(or a did:web host) before its signature can even be checked, and anyone can
mint such tokens for free: 20,000 distinct bogus DIDs were 20,002 directory
fetches, and real first-time users were refused as "busy" among them (issue 16).
so each client (the peer address of the connection, or the address a trusted proxy
names: `worker.api.client_address`) gets a token bucket of
*new* lookups: `per_second`, holding `burst`. a DID already cached, or whose
refusal is remembered, costs nothing; past the budget the request is a 401
`unresolvable` without any lookup, unless the DID's key is cached but expired: then
the stale key is used within the resolver's outage grace (a returning user is not
refused for someone else's flood). the resolver adds the rest: refusals
remembered, a share of its fetches kept for DIDs it has resolved before, the
directory's 429 honoured (`worker.identity.did_resolver`).

requests reach the API through plyr.fm's backend or a PDS proxy, so one client
address may carry many people: the budget is generous for people (five new
identities a second, eight at once) and small for a flood. (plyr.fm's backend
vouches with the internal token, which resolves nothing.)
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from worker.identity.did_resolver import (
    MAX_WEB_FETCHES,
    CachedDidResolver,
    DidResolutionError,
    SigningKeyResolver,
)

# eight at once leaves two thirds of the resolver's 24 fetches for never-seen DIDs, so
# one client can never take them all; five a second is far past any real rate of
# first-time viewers behind one address.
NEW_LOOKUPS_PER_SECOND: Final = 5.0
NEW_LOOKUP_BURST: Final = 8
MAX_CLIENTS: Final = 10_000
MAX_WEB_IN_FLIGHT_PER_CLIENT: Final = max(1, MAX_WEB_FETCHES // 4)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class ClientBudget:
    """per-client token buckets of new identity lookups, bounded in clients kept."""

    def __init__(
        self,
        *,
        per_second: float = NEW_LOOKUPS_PER_SECOND,
        burst: int = NEW_LOOKUP_BURST,
        max_clients: int = MAX_CLIENTS,
        max_web_in_flight: int = MAX_WEB_IN_FLIGHT_PER_CLIENT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_second = per_second
        self.burst = burst
        self.max_clients = max_clients
        self.max_web_in_flight = max_web_in_flight
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}  # insertion order is age: the oldest go first
        # client -> did:web lookups it caused that are running now (a client leaves
        # when its last one ends, so this holds only clients with a fetch in flight)
        self.web_in_flight: Counter[str] = Counter()
        self.refused = 0

    def admit(self, client: str, *, web: bool) -> bool:
        """whether `client` may cause one more lookup now: within its did:web fetches in
        flight (for a did:web), then within its rate (spending a token)."""
        if web and self.web_in_flight[client] >= self.max_web_in_flight:
            self.refused += 1
            return False
        return self.spend(client)

    def spend(self, client: str) -> bool:
        now = self._clock()
        bucket = self._buckets.pop(client, None)
        if bucket is None:
            bucket = _Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.per_second)
        bucket.at = now
        self._buckets[client] = bucket
        while len(self._buckets) > self.max_clients:
            self._buckets.pop(next(iter(self._buckets)))
        if bucket.tokens < 1.0:
            self.refused += 1
            return False
        bucket.tokens -= 1.0
        return True


class GatedResolver:
    """one request's view of the resolver: a lookup it would cause spends the client's budget."""

    def __init__(self, inner: SigningKeyResolver, budget: ClientBudget, client: str) -> None:
        self._inner = inner
        self._budget = budget
        self._client = client

    async def signing_key(self, did: str, *, force_refresh: bool = False) -> str:
        fetches = not isinstance(self._inner, CachedDidResolver) or self._inner.would_fetch(
            did, force_refresh=force_refresh
        )
        web = fetches and did.startswith("did:web:")
        budget, client = self._budget, self._client
        if fetches and not budget.admit(client, web=web):
            # a returning user whose key merely expired keeps its grace: the refusal is
            # about someone's flood of new identities, not about this known one. a forced
            # refresh (the signature failed with the cached key) gets none.
            if not force_refresh and isinstance(self._inner, CachedDidResolver):
                stale = self._inner.stale_key(did)
                if stale is not None:
                    return stale
            raise DidResolutionError(
                "too many new identities from this client at once", unreachable=True
            )
        if not web:
            return await self._inner.signing_key(did, force_refresh=force_refresh)
        budget.web_in_flight[client] += 1
        try:
            return await self._inner.signing_key(did, force_refresh=force_refresh)
        finally:
            budget.web_in_flight[client] -= 1
            if budget.web_in_flight[client] <= 0:
                del budget.web_in_flight[client]
