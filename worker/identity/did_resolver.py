"""who signs for a DID: its `#atproto` key, resolved once and reused for a while.

verifying a service-auth JWT needs the issuer's signing key from its DID
document. fetching that document on every request would put plc.directory on
the API's hot path, so keys are cached for `did_cache_seconds`; every fetch is
bounded in time (`did_resolve_timeout_seconds`) and in size, so a slow or
hostile host can cost a request at most a few seconds and never a 500.

the document logic is the atproto SDK's (`validate_did_doc` checks the shape
and that the document is about this DID; `ensure_atproto_key` picks the
`#atproto` verification method and turns it into a `did:key`). we do the HTTP
ourselves rather than use `AsyncDidResolver`, because that one opens httpx
clients it never closes, reads bodies of any size, and its cache uses the wall
clock and raises KeyError when a DID it never cached is not found.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote

import httpcore
import httpx
from atproto_core.exceptions import AtProtocolError
from atproto_crypto.did import parse_did_key
from atproto_identity.did.atproto_data import ensure_atproto_key
from atproto_identity.did.resolvers.base_resolver import AsyncBaseResolver

from jetstream.syntax import PLC_DID
from worker.identity.did_document import document_problem
from worker.identity.handshake import bounded_transport
from worker.identity.host_lookup import DnsLookup, HostLookup
from worker.identity.sources import source_of

if TYPE_CHECKING:
    from worker.settings import AuthSettings

logger = logging.getLogger(__name__)

# did:plc is a fixed 24-character base32 identifier (`jetstream.syntax`); did:web
# is a bare domain name here (no port, no path, no IP literal), stricter than the
# firehose's rule on purpose: the SDK supports no did:web paths, and a bare
# hostname rule keeps `https://localhost/...` and IP literals out of our fetches.
PLC_DID_RE = re.compile(rf"^{PLC_DID}$")
WEB_DID_RE = re.compile(
    r"^did:web:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+"
    r"[a-zA-Z](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$"
)
# a hostname is at most 253 characters; with the "did:web:" prefix that is 261.
MAX_DID_LENGTH = 261
# names that only mean something inside a private network: RFC 6761 `localhost`,
# RFC 6762 `.local`, RFC 8375 `home.arpa`, ICANN's private-use `.internal` (Fly.io's
# private network too) and Fly.io's `.flycast`. no atproto account lives there, and
# resolving one would have this service fetch an internal URL for anyone who sends
# a token naming it. a public name pointing at a private address is refused once
# resolved (`public_addresses`); a name that changes its answer between that check
# and the connection (DNS rebinding) is beyond an application's reach: an egress
# rule for the API's machines closes it.
PRIVATE_WEB_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa", ".flycast")
MAX_DOCUMENT_BYTES = 16 * 1024  # real DID documents are well under 4 KiB
# an answer that refuses a DID (404, a document we cannot use, a private host) is
# remembered this long: asking again at once would get the same answer, and a
# token naming it must not cost a fetch (and a parse) on every request.
REFUSAL_CACHE_SECONDS = 60.0
# fetches in flight at once, per DID method. past it a new DID fails at once (an
# outage to the caller: a cached key still gets its grace) instead of queueing.
# did:web has its own, smaller budget: anyone can name a host that answers slowly,
# and those must not take the connections plc.directory's lookups need.
MAX_PLC_FETCHES = 32
MAX_WEB_FETCHES = 8
# of those 8, one registrable domain (`worker.identity.sources`) gets 2 at once, and a
# domain whose host timed out (a silent name server, TCP accepted and TLS never
# finished) gets none for `WEB_SOURCE_FAILURE_SECONDS`: tokens naming hosts under
# one attacker's domain cost 2 fetches at a time and then one try per interval.
MAX_WEB_FETCHES_PER_SOURCE = 2
WEB_SOURCE_FAILURE_SECONDS = 30.0
MAX_REMEMBERED_SOURCES = 10_000
# of the PLC fetches, this many are kept for DIDs resolved before (a key that
# expired, a rotation): a flood of never-seen DIDs can take at most the rest.
RESERVED_FOR_KNOWN = 8
MAX_KNOWN_DIDS = 100_000  # ~10 MB at most: the DIDs that have resolved, for that share
# the directory said 429: no PLC fetch for this long (or its Retry-After, at most
# a minute), each request failing at once as an outage (a cached key keeps its grace).
DIRECTORY_BACKOFF_SECONDS = 5.0
MAX_DIRECTORY_BACKOFF_SECONDS = 60.0


def is_supported_did(value: str) -> bool:
    """a did:plc or did:web we can resolve; did:key is refused (it would sign for itself)."""
    if len(value) > MAX_DID_LENGTH:
        return False
    if PLC_DID_RE.fullmatch(value):
        return True
    return bool(WEB_DID_RE.fullmatch(value)) and not _private_name(value.removeprefix("did:web:"))


def _private_name(host: str) -> bool:
    name = "." + host.lower().rstrip(".")
    return name.endswith(PRIVATE_WEB_SUFFIXES)


def public_addresses(addresses: Sequence[str]) -> bool:
    """whether every address is on the public internet (none loopback, private,
    link-local, reserved, shared or multicast): a did:web host must be."""
    if not addresses:
        return False
    try:
        return all(ipaddress.ip_address(address).is_global for address in addresses)
    except ValueError:
        return False


class DidResolutionError(Exception):
    """the DID's signing key could not be had: not found, unreachable, too slow, malformed.

    `unreachable` is True when the directory could not answer (timeout, connection
    error, 5xx) rather than answered something we refuse (404, a bad document).
    """

    def __init__(self, message: str, *, unreachable: bool = False, timed_out: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable
        self.timed_out = timed_out


class SigningKeyResolver(Protocol):
    """what JWT verification needs from identity: a DID's signing key as a `did:key`."""

    async def signing_key(self, did: str, *, force_refresh: bool = False) -> str:
        """the `#atproto` key of `did`; `force_refresh` asks past the cache (key rotation)."""
        ...


class CachedDidResolver:
    """a DID → signing key resolver with a TTL cache, a time bound and a size bound.

    `force_refresh` (used after a signature fails, in case the key was rotated)
    goes past the cache, except within `refresh_floor_seconds` of the last fetch:
    otherwise anyone could make us re-fetch a victim's document on every request
    by sending tokens with a bad signature in their name.

    when a key has outlived `cache_seconds` and the directory cannot be reached,
    the old key is still used for up to `stale_grace_seconds`: a plc.directory
    outage should not log every viewer out. a forced refresh gets no such grace.

    concurrent requests for one DID share one fetch, and the fetches in flight
    are bounded per method (`MAX_PLC_FETCHES`, `MAX_WEB_FETCHES`), and did:web's per
    registrable domain (`MAX_WEB_FETCHES_PER_SOURCE`).
    """

    def __init__(
        self,
        *,
        plc_directory_url: str,
        cache_seconds: float = 600.0,
        timeout_seconds: float = 3.0,
        refresh_floor_seconds: float = 30.0,
        stale_grace_seconds: float = 3600.0,
        max_entries: int = 10_000,
        max_document_bytes: int = MAX_DOCUMENT_BYTES,
        max_plc_fetches: int = MAX_PLC_FETCHES,
        max_web_fetches: int = MAX_WEB_FETCHES,
        refusal_cache_seconds: float = REFUSAL_CACHE_SECONDS,
        host_addresses: HostLookup | None = None,
        clock: Callable[[], float] = time.monotonic,
        http_client: httpx.AsyncClient | None = None,
        network: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        """`network` is the one under the resolver's own HTTP client (tests route it to
        loopback servers); `http_client` replaces that client altogether."""
        self.plc_directory_url = plc_directory_url.rstrip("/")
        self.cache_seconds = cache_seconds
        self.timeout_seconds = timeout_seconds
        self.refresh_floor_seconds = refresh_floor_seconds
        self.stale_grace_seconds = stale_grace_seconds
        self.max_entries = max_entries
        self.max_document_bytes = max_document_bytes
        self.refusal_cache_seconds = refusal_cache_seconds
        # did -> (the refusal's message, until when); insertion order is age.
        self._refused: dict[str, tuple[str, float]] = {}
        self._known: dict[str, None] = {}  # DIDs that resolved once; insertion order is age
        self._directory_quiet_until = 0.0  # a 429's back-off (clock time)
        self.max_fetches = {"plc": max_plc_fetches, "web": max_web_fetches}
        self._fetching: Counter[str] = Counter()  # method -> fetches in flight
        self._fetching_source: Counter[str] = Counter()  # did:web source -> fetches in flight
        self._source_quiet_until: dict[str, float] = {}  # did:web source -> refused until
        self._inflight: dict[str, asyncio.Task[str]] = {}  # did -> its one fetch
        # c-ares, never the loop's thread pool (see worker.identity.host_lookup)
        self._owned_lookup: DnsLookup | None = None
        if host_addresses is None:
            host_addresses = self._owned_lookup = DnsLookup()
        self._host_addresses = host_addresses
        self._clock = clock
        self._owns_client = http_client is None
        self._client = http_client or httpx.AsyncClient(
            # the TLS handshake bounded inside the deadline, its socket closed on a
            # cancellation (`worker.identity.handshake`); httpx's default pool limits
            transport=bounded_transport(
                httpx.Limits(max_connections=100, max_keepalive_connections=20), network=network
            ),
            timeout=httpx.Timeout(timeout_seconds),
            follow_redirects=False,
            headers={"user-agent": "plyr-recs (did resolver)"},
        )
        # did -> (did:key, fetched at); insertion order is age order for eviction.
        self._cache: dict[str, tuple[str, float]] = {}
        # "fetch", "cache_hit", "refresh_floor", "stale_used" and "failed:<kind>".
        self.counts: Counter[str] = Counter()

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> CachedDidResolver:
        return cls(
            plc_directory_url=settings.plc_directory_url,
            cache_seconds=settings.did_cache_seconds,
            timeout_seconds=settings.did_resolve_timeout_seconds,
        )

    async def aclose(self) -> None:
        fetches = list(self._inflight.values())
        for fetch in fetches:
            fetch.cancel()
        await asyncio.gather(*fetches, return_exceptions=True)
        if self._owns_client:
            await self._client.aclose()
        if self._owned_lookup is not None:
            await self._owned_lookup.aclose()

    async def signing_key(self, did: str, *, force_refresh: bool = False) -> str:
        if not is_supported_did(did):
            self.counts["failed:unsupported_did"] += 1
            raise DidResolutionError(f"unsupported DID {did[:64]!r}")
        now = self._clock()
        refused = self._refused.get(did)
        if refused is not None and now < refused[1]:
            self.counts["refusal_cached"] += 1
            raise DidResolutionError(refused[0])
        cached = self._cache.get(did)
        if cached is not None:
            key, fetched_at = cached
            age = now - fetched_at
            if not force_refresh and age < self.cache_seconds:
                self.counts["cache_hit"] += 1
                return key
            if force_refresh and age < self.refresh_floor_seconds:
                self.counts["refresh_floor"] += 1
                return key
        try:
            key = await self._shared_fetch(did)
        except DidResolutionError as error:
            if not error.unreachable:
                self._remember_refusal(did, str(error), now)
            # only an outage earns the grace: a 404 or a bad document is an answer.
            if cached is None or force_refresh or not error.unreachable:
                raise
            stale_key, fetched_at = cached
            if now - fetched_at >= self.cache_seconds + self.stale_grace_seconds:
                raise
            self.counts["stale_used"] += 1
            return stale_key
        self._remember(did, key, now)
        return key

    def forget(self, did: str) -> None:
        """drop a cached key or refusal (tests, and an operator who knows a key was rotated)."""
        self._cache.pop(did, None)
        self._refused.pop(did, None)

    def _remember_refusal(self, did: str, message: str, now: float) -> None:
        self._refused.pop(did, None)
        self._refused[did] = (message, now + self.refusal_cache_seconds)
        while len(self._refused) > self.max_entries:
            self._refused.pop(next(iter(self._refused)))

    def would_fetch(self, did: str, *, force_refresh: bool = False) -> bool:
        """whether `signing_key(did)` would look the DID up now (not a cache answer):
        what a per-client budget in front of the resolver charges for."""
        if not is_supported_did(did):
            return False
        now = self._clock()
        refused = self._refused.get(did)
        if refused is not None and now < refused[1]:
            return False
        cached = self._cache.get(did)
        if cached is None:
            return True
        age = now - cached[1]
        return age >= (self.refresh_floor_seconds if force_refresh else self.cache_seconds)

    def stale_key(self, did: str) -> str | None:
        """the cached key of `did` past `cache_seconds` but within its grace, else None:
        what a returning user is verified with when a lookup is not to be made now
        (the per-client budget refused it), as when the directory is down."""
        cached = self._cache.get(did)
        if cached is None:
            return None
        key, fetched_at = cached
        if self._clock() - fetched_at >= self.cache_seconds + self.stale_grace_seconds:
            return None
        self.counts["stale_used"] += 1
        return key

    def _remember(self, did: str, key: str, now: float) -> None:
        self._known.pop(did, None)
        self._known[did] = None
        while len(self._known) > MAX_KNOWN_DIDS:
            self._known.pop(next(iter(self._known)))
        self._cache.pop(did, None)
        self._cache[did] = (key, now)
        while len(self._cache) > self.max_entries:
            self._cache.pop(next(iter(self._cache)))

    async def _shared_fetch(self, did: str) -> str:
        """one fetch per DID at a time: the callers of the moment all wait for it."""
        fetch = self._inflight.get(did)
        if fetch is None:
            fetch = asyncio.create_task(self._bounded_fetch(did))
            self._inflight[did] = fetch
            fetch.add_done_callback(lambda done: self._fetched(did, done))
        else:
            self.counts["shared_fetch"] += 1
        # shielded: a caller that gives up does not cancel the others' fetch
        return await asyncio.shield(fetch)

    def _fetched(self, did: str, fetch: asyncio.Task[str]) -> None:
        if self._inflight.get(did) is fetch:
            del self._inflight[did]
        if not fetch.cancelled():
            fetch.exception()  # retrieved: its waiters have it, or all gave up

    async def _bounded_fetch(self, did: str) -> str:
        method = did.split(":", 2)[1]
        budget = self.max_fetches[method]
        if method == "plc":
            if self._clock() < self._directory_quiet_until:
                self.counts["failed:directory_backoff"] += 1
                raise DidResolutionError(
                    f"the PLC directory asked us to slow down; {did[:64]} not looked up",
                    unreachable=True,
                )
            if did not in self._known:
                budget -= min(RESERVED_FOR_KNOWN, budget // 4)  # a quarter, at most 8
        if self._fetching[method] >= budget:
            self.counts["failed:busy"] += 1
            raise DidResolutionError(
                f"too many did:{method} lookups under way; {did[:64]} not looked up",
                unreachable=True,
            )
        if method == "web":
            return await self._web_fetch(did)
        self._fetching[method] += 1
        try:
            return await self._fetch_key(did)
        finally:
            self._fetching[method] -= 1

    async def _web_fetch(self, did: str) -> str:
        """a did:web fetch, within its source's share (`MAX_WEB_FETCHES_PER_SOURCE`) and
        not while the source is remembered failing."""
        source = source_of(did.removeprefix("did:web:"))
        if self._clock() < self._source_quiet_until.get(source, 0.0):
            self.counts["failed:source_failing"] += 1
            raise DidResolutionError(
                f"the host of {did[:64]} timed out lately; not looked up", unreachable=True
            )
        if self._fetching_source[source] >= MAX_WEB_FETCHES_PER_SOURCE:
            self.counts["failed:source_busy"] += 1
            raise DidResolutionError(
                f"too many lookups under {source[:64]} under way; {did[:64]} not looked up",
                unreachable=True,
            )
        self._fetching["web"] += 1
        self._fetching_source[source] += 1
        try:
            return await self._fetch_key(did)
        except DidResolutionError as error:
            if error.timed_out:
                self._source_quiet_until.pop(source, None)
                self._source_quiet_until[source] = self._clock() + WEB_SOURCE_FAILURE_SECONDS
                while len(self._source_quiet_until) > MAX_REMEMBERED_SOURCES:
                    self._source_quiet_until.pop(next(iter(self._source_quiet_until)))
            raise
        finally:
            self._fetching["web"] -= 1
            self._fetching_source[source] -= 1
            if self._fetching_source[source] <= 0:
                del self._fetching_source[source]

    async def _fetch_key(self, did: str) -> str:
        self.counts["fetch"] += 1
        try:
            async with asyncio.timeout(self.timeout_seconds):
                document = await self._fetch_document(did)
        # httpx's own timeouts too: the TLS handshake's bound fires inside the deadline
        except (TimeoutError, httpx.TimeoutException) as error:
            self.counts["failed:timeout"] += 1
            logger.warning("resolving %s timed out", did)
            raise DidResolutionError(
                f"resolving {did} timed out", unreachable=True, timed_out=True
            ) from error
        except httpx.HTTPError as error:
            self.counts["failed:http"] += 1
            logger.warning("resolving %s failed: %s", did, type(error).__name__)
            raise DidResolutionError(f"resolving {did} failed", unreachable=True) from error
        problem = document_problem(document)
        if problem is not None:  # refused before anything in it is decoded
            self.counts[f"failed:{problem}"] += 1
            logger.warning("the DID document of %s is refused: %s", did, problem)
            raise DidResolutionError(f"the DID document of {did} is unusable ({problem})")
        try:
            parsed = AsyncBaseResolver.validate_did_doc(did, document)
            key: str = ensure_atproto_key(parsed)
            parse_did_key(key)  # a key we could not verify with is no key at all
        except (AtProtocolError, ValueError) as error:
            self.counts["failed:bad_document"] += 1
            logger.warning("the DID document of %s is unusable: %s", did, type(error).__name__)
            raise DidResolutionError(f"the DID document of {did} is unusable") from error
        return key

    async def _fetch_document(self, did: str) -> dict[str, object]:
        url = self._document_url(did)
        headers: dict[str, str] = {}
        extensions: dict[str, object] = {}
        if did.startswith("did:web:"):
            # dial the address just checked, not the name again: no second lookup
            # (on the thread pool, as httpx would) and no answer changed in between.
            host = did.removeprefix("did:web:")
            address = await self._public_address_of(did)
            literal = f"[{address}]" if ":" in address else address
            url = f"https://{literal}/.well-known/did.json"
            headers["host"] = host
            extensions["sni_hostname"] = host  # TLS checks the certificate for the name
        async with self._client.stream(
            "GET", url, headers=headers, extensions=extensions
        ) as response:
            if response.status_code != 200:
                self.counts[f"failed:status_{response.status_code}"] += 1
                if response.status_code == 429 and did.startswith("did:plc:"):
                    self._back_off(response.headers.get("retry-after", ""))
                raise DidResolutionError(
                    f"resolving {did}: HTTP {response.status_code}",
                    unreachable=response.status_code >= 500 or response.status_code == 429,
                )
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_document_bytes:
                self.counts["failed:oversized"] += 1
                raise DidResolutionError(f"the DID document of {did} is too large")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self.max_document_bytes:
                    self.counts["failed:oversized"] += 1
                    raise DidResolutionError(f"the DID document of {did} is too large")
        try:
            document = json.loads(body)
        # RecursionError: 64 KiB of "[" nests deeper than the parser will go.
        except (ValueError, RecursionError) as error:
            self.counts["failed:bad_document"] += 1
            raise DidResolutionError(f"the DID document of {did} is not JSON") from error
        if not isinstance(document, dict):
            self.counts["failed:bad_document"] += 1
            raise DidResolutionError(f"the DID document of {did} is not an object")
        return document

    def _back_off(self, retry_after: str) -> None:
        seconds = float(retry_after) if retry_after.isdigit() else DIRECTORY_BACKOFF_SECONDS
        seconds = min(max(seconds, 1.0), MAX_DIRECTORY_BACKOFF_SECONDS)
        self._directory_quiet_until = max(self._directory_quiet_until, self._clock() + seconds)
        logger.warning("the PLC directory answered 429: no lookups for %.0f s", seconds)

    async def _public_address_of(self, did: str) -> str:
        """the address to fetch a did:web document from, once every address of its
        host is known to be public."""
        host = did.removeprefix("did:web:")
        try:
            addresses = await self._host_addresses(host)
        except OSError as error:  # socket.gaierror: no such name, or DNS is down
            self.counts["failed:dns"] += 1
            raise DidResolutionError(f"resolving {did}: no address", unreachable=True) from error
        if not public_addresses(addresses):
            self.counts["failed:private_address"] += 1
            logger.warning("refusing %s: its host resolves to a non-public address", did)
            raise DidResolutionError(f"{did} is not on the public internet")
        return addresses[0]

    def _document_url(self, did: str) -> str:
        if did.startswith("did:plc:"):
            return f"{self.plc_directory_url}/{quote(did, safe=':')}"
        # did:web:<host> lives at https://<host>/.well-known/did.json
        return f"https://{did.removeprefix('did:web:')}/.well-known/did.json"
