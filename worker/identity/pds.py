"""reading a playlist's list record from its owner's PDS, for the API's inline compute.

the API needs a playlist's tracks when it computes a version the worker has not
(the worker's stored state names another version, or there is none). the
record lives in the owner's repo: `com.atproto.repo.getRecord` on their PDS,
through the `atproto` SDK's async client.

a PDS is someone else's server, so every answer is untrusted: the call is
bounded in time (the whole call, not only each socket step) and in size (the
body is counted as it streams in), and the record is validated exactly as the
Jetstream consumer validates one (`jetstream.records.playlist_track_uris`).
one HTTP connection pool serves every PDS; a light SDK client per call only
carries the base URL.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import httpx
from atproto import AsyncClient, models
from atproto_client.exceptions import AtProtocolError, ModelError
from atproto_client.request import AsyncRequest

from jetstream.records import RecordLimits, playlist_track_uris
from jetstream.syntax import is_cid, is_did, is_nsid, is_rkey
from worker.identity.handshake import bounded_transport
from worker.identity.host_lookup import DnsLookup, HostLookup
from worker.identity.pds_guard import GuardedTransport, PdsRefused

logger = logging.getLogger(__name__)

PDS_TIMEOUT_SECONDS: Final = 3.0  # the whole getRecord call; the request waits on it
MAX_RECORD_BYTES: Final = 1024 * 1024  # a full 500-item list is ~100 KiB
MAX_PDS_URL_LENGTH: Final = 2048
MAX_CONNECTIONS: Final = 32  # to all PDSes together, per API process
MAX_REDIRECTS: Final = 0  # a 3xx is refused by the guard (worker.identity.pds_guard)
MAX_LIST_CURSOR_LENGTH: Final = 512  # listRecords cursors are rkeys (~13 characters)

_T = TypeVar("_T")


class RecordUnavailable(Exception):
    """the record could not be read: `reason` is a short, fixed word (for metrics)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RecordRejected(RecordUnavailable):
    """the PDS answered, but not with a playlist this service can use."""


@dataclass(frozen=True, slots=True)
class ListRecord:
    """what the owner's PDS holds now: the tracks, in order, and the record's CID."""

    track_uris: tuple[str, ...]
    cid: str | None  # None when the PDS did not say, or said something that is not a CID


class _TooLarge(Exception):
    """raised from inside the HTTP stream when a body passes MAX_RECORD_BYTES."""


class _BoundedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, max_bytes: int) -> None:
        self._inner = inner
        self._max_bytes = max_bytes

    async def __aiter__(self) -> AsyncIterator[bytes]:
        received = 0
        async for chunk in self._inner:
            received += len(chunk)
            if received > self._max_bytes:
                raise _TooLarge
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class _BoundedTransport(httpx.AsyncBaseTransport):
    """refuses bodies past `max_bytes`, declared or not, before they fill memory."""

    def __init__(self, inner: httpx.AsyncBaseTransport, max_bytes: int) -> None:
        self._inner = inner
        self._max_bytes = max_bytes

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_bytes:
            await response.aclose()
            raise _TooLarge
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_BoundedStream(stream, self._max_bytes),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


class PdsRecords:
    """fetches list records from the owners' PDSes; `aclose` on shutdown."""

    def __init__(
        self,
        *,
        limits: RecordLimits,
        list_collection: str,
        timeout_seconds: float = PDS_TIMEOUT_SECONDS,
        max_bytes: int = MAX_RECORD_BYTES,
        transport: httpx.AsyncBaseTransport | None = None,
        host_addresses: HostLookup | None = None,
        allow_private: bool = False,
    ) -> None:
        """`allow_private` lets plain http and loopback addresses through: tests only."""
        if timeout_seconds <= 0 or max_bytes <= 0:
            raise ValueError("the PDS timeout and size bound must be positive")
        self.limits = limits
        self.list_collection = list_collection
        self.timeout_seconds = timeout_seconds
        inner = transport or bounded_transport(  # TLS inside its bound (handshake.py)
            httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=8)
        )
        self._owned_lookup: DnsLookup | None = None
        if host_addresses is None:
            # most accounts live on a few big hosts (bsky.network's PDSes are one
            # "source"), so the per-source bound is the whole inline-compute budget.
            host_addresses = self._owned_lookup = DnsLookup(max_per_source=MAX_CONNECTIONS)
        guarded = GuardedTransport(
            inner, host_addresses=host_addresses, allow_private=allow_private
        )
        self._request = AsyncRequest(
            transport=_BoundedTransport(guarded, max_bytes),
            timeout=httpx.Timeout(timeout_seconds),
            max_redirects=MAX_REDIRECTS,
        )

    async def aclose(self) -> None:
        await self._request.close()
        if self._owned_lookup is not None:
            await self._owned_lookup.aclose()

    async def fetch(self, pds_url: str, record_uri: str) -> ListRecord:
        """the list record `record_uri` as its owner's PDS at `pds_url` holds it now.

        raises `RecordUnavailable` (unreachable, slow, an error status, too big)
        or `RecordRejected` (an answer that is not a valid playlist record).
        """
        repo, rkey = self._parse_record_uri(record_uri)
        client = AsyncClient(base_url=_checked_pds_url(pds_url), request=self._request)
        params = models.ComAtprotoRepoGetRecord.Params(
            repo=repo, collection=self.list_collection, rkey=rkey
        )
        response = await self._bounded_call(client.com.atproto.repo.get_record(params))
        return self._validated(response)

    async def list_page(
        self, pds_url: str, repo: str, *, cursor: str | None = None, limit: int = 100
    ) -> tuple[dict[str, ListRecord | RecordRejected], str | None]:
        """one page of the owner's list records (`com.atproto.repo.listRecords`): each
        record by URI, validated like `fetch`'s (a bad one is its `RecordRejected`, the
        rest still count), and the cursor of the next page (None: that was the last).
        raises as `fetch` does for the page as a whole."""
        if not is_did(repo) or (cursor is not None and len(cursor) > MAX_LIST_CURSOR_LENGTH):
            raise RecordRejected("bad_list_request")
        client = AsyncClient(base_url=_checked_pds_url(pds_url), request=self._request)
        params = models.ComAtprotoRepoListRecords.Params(
            repo=repo, collection=self.list_collection, limit=max(1, min(limit, 100)), cursor=cursor
        )
        response = await self._bounded_call(client.com.atproto.repo.list_records(params))
        prefix = f"at://{repo}/{self.list_collection}/"
        found: dict[str, ListRecord | RecordRejected] = {}
        for record in getattr(response, "records", None) or ():
            uri = getattr(record, "uri", None)
            if not isinstance(uri, str) or not uri.startswith(prefix):
                continue  # not a record of this repo's collection: never trusted as one
            try:
                found[uri] = self._validated(record)
            except RecordRejected as rejected:
                found[uri] = rejected
        next_cursor = getattr(response, "cursor", None)
        if not isinstance(next_cursor, str) or not next_cursor or not found:
            next_cursor = None
        return found, next_cursor

    async def _bounded_call(self, call: Awaitable[_T]) -> _T:
        try:
            async with asyncio.timeout(self.timeout_seconds):
                return await call
        except TimeoutError as error:
            raise RecordUnavailable("timeout") from error
        except _TooLarge as error:
            raise RecordRejected("too_large") from error
        except PdsRefused as error:
            raise RecordRejected(error.reason) from error
        except (ModelError, ValueError) as error:
            # a 200 whose body is not JSON (pydantic_core's ValueError) or not a getRecord answer
            raise RecordRejected("bad_response") from error
        except (AtProtocolError, httpx.HTTPError) as error:
            # the SDK wraps network faults and error statuses in AtProtocolError;
            # a few httpx faults (protocol errors, redirect loops) come through as they are.
            raise RecordUnavailable(_fault_name(error)) from error

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

    def _validated(self, response: Any) -> ListRecord:
        value = getattr(response, "value", None)
        # the SDK hands an unknown record type over as a DotDict; plain data is checked as is
        to_dict = getattr(value, "to_dict", None)
        record = to_dict() if callable(to_dict) else value
        parsed = playlist_track_uris(record, self.limits)
        if not isinstance(parsed, tuple):
            raise RecordRejected(str(parsed))  # an InvalidReason or SkipReason (album, liked)
        cid = getattr(response, "cid", None)
        return ListRecord(parsed, cid if isinstance(cid, str) and is_cid(cid) else None)


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


def _fault_name(error: Exception) -> str:
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    if not isinstance(status, int):
        return "unreachable"  # no answer at all: refused, reset, DNS, a protocol error
    # a PDS says RecordNotFound with a 400 (the XRPC convention), some proxies with a 404.
    return "not_found" if status in (400, 404) else f"status_{status // 100}xx"
