"""reading a playlist's list record from its owner's PDS, for the API's inline compute
and the reconcile loop.

the API needs a playlist's tracks when it computes a version the worker has not
(the worker's stored state names another version, or there is none); a reconcile
pass needs them for every playlist not cached. the record lives in the owner's
repo: `com.atproto.repo.getRecord` (or `listRecords`, a page of one repo's lists)
on their PDS, read here with aiohttp. (it was httpx, whose async stack cost the client
5x the CPU per read, `python -m bench pds-client`; a cold deploy reads one record per
playlist: issue 20.)

a PDS is someone else's server, so every answer is untrusted, and it is bounded
before it is parsed (issue 23, finding 1):
- in time: the whole call, connect to last byte (a slow drip is a timeout);
- in size: the body is counted as it streams in and refused past the bound,
  declared or not; it must come unencoded (a gzip bomb is not decompressed);
- in CPU: `worker.identity.pds_decode` counts its structure before orjson parses
  it, then the consumer's own validator checks the record. no SDK models.
- in where it goes: `worker.identity.pds_guard` (https, public addresses, no redirects).

a host that failed (timed out, junk) or a record that was refused (too large,
too many items) is remembered with a backoff (`pds_backoff`, `pds_failures`) and
refused at once with `host_failing` / `record_failing` until it passes: one memory
per client, for every caller sharing the client. one connection pool serves every PDS.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Final
from urllib.parse import urlsplit

import aiohttp
import certifi

from engine.loop_clients import LoopClients
from jetstream.records import RecordLimits
from jetstream.syntax import is_did, is_nsid, is_rkey
from worker.identity.handshake import HANDSHAKE_SECONDS
from worker.identity.host_lookup import DnsLookup, HostLookup
from worker.identity.pds_backoff import HOST_FAILING, RECORD_FAILING, Backoff, Scope, scope_of
from worker.identity.pds_decode import (
    ListRecord,
    RecordRejected,
    RecordUnavailable,
    decode_page,
    decode_record,
)
from worker.identity.pds_failures import FailureMemory
from worker.identity.pds_guard import PdsRefused, PinnedResolver, checked_target

__all__ = [
    "HOST_FAILING",
    "RECORD_FAILING",
    "ListRecord",
    "PdsRecords",
    "RecordRejected",
    "RecordUnavailable",
    "pds_host",
]

logger = logging.getLogger(__name__)

PDS_TIMEOUT_SECONDS: Final = 3.0  # the whole getRecord call; the request waits on it
# the consumer's frame bound (`JETSTREAM_MAX_FRAME_BYTES`'s default): a record the firehose
# can carry fits, and a full 500-item list is ~100 KiB
MAX_RECORD_BYTES: Final = 512 * 1024
MAX_PAGE_BYTES: Final = 1024 * 1024  # a listRecords page past it is read record by record
MAX_PDS_URL_LENGTH: Final = 2048
MAX_CONNECTIONS: Final = 32  # to all PDSes together, per process
MAX_LIST_CURSOR_LENGTH: Final = 512  # listRecords cursors are rkeys (~13 characters)
# a new connection's TCP and TLS handshakes together (aiohttp's `sock_connect`): two
# round trips, which a second covers to the far side of the world several times over.
# a host that accepts TCP and never answers the ClientHello costs this, not the whole
# call; asyncio closes the socket of a handshake cut short, timed out or cancelled
CONNECT_SECONDS: Final = HANDSHAKE_SECONDS
READ_CHUNK_BYTES: Final = 64 * 1024
# an honest PDS answers JSON as it is; an encoded body would be inflated past the bound
REQUEST_HEADERS: Final = {"accept": "application/json", "accept-encoding": "identity"}


def pds_host(pds_url: str) -> str:
    """the origin's host and port: what one PDS server is (the key of its failures,
    and of any per-host bound a caller keeps)."""
    try:
        return (urlsplit(pds_url).netloc or pds_url).lower()
    except ValueError:
        return pds_url


class PdsRecords:
    """fetches list records from the owners' PDSes; `aclose` on shutdown."""

    def __init__(
        self,
        *,
        limits: RecordLimits,
        list_collection: str,
        timeout_seconds: float = PDS_TIMEOUT_SECONDS,
        max_bytes: int = MAX_RECORD_BYTES,
        max_page_bytes: int = MAX_PAGE_BYTES,
        host_addresses: HostLookup | None = None,
        allow_private: bool = False,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`allow_private` lets plain http and loopback addresses through: tests and the
        embedded demo only. `host_addresses` replaces the c-ares lookup of names (tests)."""
        if timeout_seconds <= 0 or max_bytes <= 0 or max_page_bytes <= 0:
            raise ValueError("the PDS timeout and size bounds must be positive")
        self.limits = limits
        self.list_collection = list_collection
        self.timeout_seconds = timeout_seconds
        self.max_bytes = max_bytes
        self.max_page_bytes = max_page_bytes
        self.failures = FailureMemory(backoff or Backoff(), clock)
        self._allow_private = allow_private
        self._owned_lookup: DnsLookup | None = None
        if host_addresses is None and not allow_private:
            # most accounts live on a few big hosts (bsky.network's PDSes are one
            # "source"), so the per-source bound is the whole connection budget.
            host_addresses = self._owned_lookup = DnsLookup(max_per_source=MAX_CONNECTIONS)
        # None (loopback only): aiohttp's own resolver, names as the system has them
        self._host_addresses = host_addresses
        # an aiohttp session belongs to the event loop it was opened in: one per loop
        self._sessions = LoopClients(
            self._open_session, _close_session, what="PDS session", close_seconds=timeout_seconds
        )

    async def aclose(self) -> None:
        """close the sessions (each in its own loop) and the lookup this client owns."""
        await self._sessions.aclose()
        if self._owned_lookup is not None:
            await self._owned_lookup.aclose()

    def _open_session(self) -> aiohttp.ClientSession:
        """a session for this event loop.

        one pool of MAX_CONNECTIONS for every PDS, every connection kept for the next
        request; names pinned by `PinnedResolver` (aiohttp's cache of answers off, so
        it asks each time: the lookup keeps its own, bounded); no cookies kept (a PDS
        could send any number); bodies not decompressed (refused if encoded)."""
        resolver = (
            None
            if self._host_addresses is None
            else PinnedResolver(self._host_addresses, allow_private=self._allow_private)
        )
        connector = aiohttp.TCPConnector(
            limit=MAX_CONNECTIONS,
            use_dns_cache=False,
            resolver=resolver,
            ssl=_verified_tls(),
        )
        return aiohttp.ClientSession(
            connector=connector,
            headers=REQUEST_HEADERS,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_SECONDS),
            trust_env=False,  # no proxy or certificate settings from the environment
        )

    def failing(self, pds_url: str) -> str | None:
        """why the PDS at `pds_url` is refused now (its last fault), or None: for a
        caller deciding whether a request is worth a slot before it asks."""
        return self.failures.failing(pds_host(pds_url))

    async def fetch(
        self, pds_url: str, record_uri: str, *, version: str | None = None
    ) -> ListRecord:
        """the list record `record_uri` as its owner's PDS at `pds_url` holds it now.

        raises `RecordUnavailable` (unreachable, slow, an error status, `host_failing`)
        or `RecordRejected` (too big, not a valid playlist record, `record_failing`).
        `version` (plyr.fm's CID for the record, when the caller has it) scopes the
        memory of a refused record: an edit is a new version, read afresh at once.
        """
        repo, rkey = self._parse_record_uri(record_uri)
        base = _checked_pds_url(pds_url)
        params = {"repo": repo, "collection": self.list_collection, "rkey": rkey}
        record_key = record_uri if version is None else f"{record_uri} {version}"
        async with self._remembered(pds_host(base), record_key):
            body = await self._get(base, "com.atproto.repo.getRecord", params, self.max_bytes)
            return decode_record(body, self.limits)

    async def list_page(
        self, pds_url: str, repo: str, *, cursor: str | None = None, limit: int = 100
    ) -> tuple[dict[str, ListRecord | RecordRejected], str | None]:
        """one page of the owner's list records (`com.atproto.repo.listRecords`): each
        record by URI, validated like `fetch`'s (a bad one is its `RecordRejected`, the
        rest still count), and the cursor of the next page (None: that was the last).
        raises as `fetch` does for the page as a whole."""
        if not is_did(repo) or (cursor is not None and len(cursor) > MAX_LIST_CURSOR_LENGTH):
            raise RecordRejected("bad_list_request")
        base = _checked_pds_url(pds_url)
        params = {
            "repo": repo,
            "collection": self.list_collection,
            "limit": str(max(1, min(limit, 100))),
        }
        if cursor is not None:
            params["cursor"] = cursor
        async with self._remembered(pds_host(base), None):
            method = "com.atproto.repo.listRecords"
            body = await self._get(base, method, params, self.max_page_bytes)
            return decode_page(body, self.limits, f"at://{repo}/{self.list_collection}/")

    @asynccontextmanager
    async def _remembered(self, host: str, record_key: str | None) -> AsyncIterator[None]:
        """refuse what is remembered as failing; remember what fails in the block.
        (`record_key` None: a listing, whose record-sized refusals name no record.)"""
        if not self.failures.admit(host):
            raise RecordUnavailable(HOST_FAILING)
        if record_key is not None and not self.failures.admit(record_key):
            self.failures.released(host)
            raise RecordRejected(RECORD_FAILING)
        try:
            yield
        except RecordUnavailable as error:
            scope = scope_of(error.reason)
            if scope is Scope.HOST:
                seconds = self.failures.failed(host, error.reason)
                logger.warning("PDS %s failed (%s): refused for %.0f s", host, error, seconds)
            else:
                self.failures.succeeded(host)  # it answered, whatever it said
            if record_key is not None:
                if scope is Scope.RECORD:
                    self.failures.failed(record_key, error.reason, Scope.RECORD)
                else:
                    self.failures.released(record_key)
            raise
        except BaseException:
            self.failures.released(host)  # cancelled, or a fault nobody expected
            if record_key is not None:
                self.failures.released(record_key)
            raise
        self.failures.succeeded(host)
        if record_key is not None:
            self.failures.succeeded(record_key)

    async def _get(self, base: str, method: str, params: dict[str, str], max_bytes: int) -> bytes:
        """the body of a 2xx answer to `GET {base}/xrpc/{method}`, at most `max_bytes`."""
        root = base.rstrip("/")
        # as the SDK took it: a base URL with or without its `/xrpc`
        url = f"{root if root.endswith('/xrpc') else root + '/xrpc'}/{method}"
        parts = urlsplit(url)
        try:
            checked_target(parts.scheme, parts.hostname or "", allow_private=self._allow_private)
            async with (
                asyncio.timeout(self.timeout_seconds),
                self._sessions.current().get(url, params=params, allow_redirects=False) as response,
            ):
                if 300 <= response.status < 400:
                    raise PdsRefused("redirect")  # never followed, never taken as the record
                return await _bounded_body(response, max_bytes)
        except TimeoutError as error:  # the call's deadline, or aiohttp's connect bound
            raise RecordUnavailable("timeout") from error
        except PdsRefused as error:
            raise RecordRejected(error.reason) from error
        except aiohttp.ClientError as error:  # refused, reset, DNS, TLS, a protocol error
            raise RecordUnavailable("unreachable") from error

    def _parse_record_uri(self, record_uri: str) -> tuple[str, str]:
        prefix = "at://"
        did, _, rest = record_uri.removeprefix(prefix).partition("/")
        collection, _, rkey = rest.partition("/")
        if (
            not record_uri.startswith(prefix)
            or not is_did(did)
            or collection != self.list_collection
            or not is_nsid(collection)
            or not is_rkey(rkey)
        ):
            raise RecordRejected("bad_record_uri")
        return did, rkey


async def _bounded_body(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    status = response.status
    if not 200 <= status < 300:
        # a PDS says RecordNotFound with a 400 (the XRPC convention), some proxies with a 404.
        if status == 429:
            raise RecordUnavailable("rate_limited")  # the host asks for less: it gets a backoff
        fault = "not_found" if status in (400, 404) else f"status_{status // 100}xx"
        raise RecordUnavailable(fault)
    if response.headers.get("content-encoding", "identity").strip().lower() != "identity":
        raise RecordRejected("bad_encoding")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise RecordRejected("too_large")
    chunks: list[bytes] = []
    received = 0
    # unencoded (checked above), so these are the bytes as they came, counted as they come
    async for chunk in response.content.iter_chunked(READ_CHUNK_BYTES):
        received += len(chunk)
        if received > max_bytes:
            raise RecordRejected("too_large")
        chunks.append(chunk)
    return b"".join(chunks)


async def _close_session(session: aiohttp.ClientSession) -> None:
    await session.close()


def _verified_tls() -> ssl.SSLContext:
    """certificates checked against certifi's roots (as httpx did: the same trust on
    every machine, whatever its system store holds)."""
    return ssl.create_default_context(cafile=certifi.where())


def _checked_pds_url(pds_url: str) -> str:
    """the PDS base URL, if it is a plain http(s) origin (it comes from plyr.fm's database)."""
    if len(pds_url) > MAX_PDS_URL_LENGTH:
        raise RecordRejected("bad_pds_url")
    try:
        parts = urlsplit(pds_url)
    except ValueError as error:
        raise RecordRejected("bad_pds_url") from error
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
        raise RecordRejected("bad_pds_url")
    return pds_url
