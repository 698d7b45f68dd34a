"""which host to connect to next, which wire it speaks, and what to ask it for.

hosts rotate on every reconnect: a host that dropped us may be restarting or
partitioned, and the public hosts are independent copies of the firehose.
since each host stamps `time_us` itself, a cursor taken on one host is only
approximately positioned on another; switching hosts therefore rewinds further
(`jetstream_rotation_rewind_seconds`) than reconnecting to the same one.

the wire is chosen by the URL's path: `/xrpc/network.bsky.jetstream.subscribeEvents`
is Jetstream v2 (filters `collections`, cursor = the instance's `seq`, or a
timestamp when >= 1e15), anything else (`/subscribe`) is v1 (`wantedCollections`,
cursor = `time_us`). v2 rejects v1's parameter names, so each wire gets its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
from websockets.exceptions import InvalidStatus

V2_SUBSCRIBE_PATH = "/xrpc/network.bsky.jetstream.subscribeEvents"
V2_DICTIONARY_PATH = "/xrpc/network.bsky.jetstream.getZstdDictionary"
V2_SUBPROTOCOL = "xrpc.v1.json"
# the v2 host reads a cursor at or above this as unix microseconds, below as a seq.
V2_TIMESTAMP_CURSOR_FLOOR = 10**15

# every query parameter either wire's subscription sets; replaced, never duplicated.
_OURS = frozenset(
    {"wantedCollections", "collections", "cursor", "zstdDictionary", "compress", "kinds"}
)


class Wire(StrEnum):
    V1 = "v1"
    V2 = "v2"


def wire_of(host: str) -> Wire:
    path = urlsplit(host).path.rstrip("/")
    return Wire.V2 if path.endswith(V2_SUBSCRIBE_PATH) else Wire.V1


def dictionary_url(host: str) -> str:
    """the http(s) URL of a v2 host's zstd dictionary (`getZstdDictionary`)."""
    parts = urlsplit(host)
    scheme = "https" if parts.scheme == "wss" else "http"
    base = parts.path.rstrip("/")[: -len(V2_SUBSCRIBE_PATH)]
    return urlunsplit((scheme, parts.netloc, base + V2_DICTIONARY_PATH, "", ""))


class InvalidHost(ValueError):
    """a configured Jetstream endpoint that can never work (a configuration error)."""


def check_host(host: str) -> str:
    """`host` if it is a ws:// or wss:// URL with a network location."""
    parts = urlsplit(host)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise InvalidHost(f"not a ws:// or wss:// URL: {host!r}")
    return host


def subscribe_url(
    host: str,
    collections: str | Sequence[str],
    cursor: int | None,
    *,
    zstd_dictionary: int | None = None,
) -> str:
    """`host` with the collection filter and `cursor` set in its wire's dialect (any
    of ours already in the URL are replaced; other query parameters are kept).
    `zstd_dictionary` opts a v2 connection into dictionary zstd."""
    parts = urlsplit(host)
    wanted = [collections] if isinstance(collections, str) else list(collections)
    query = [
        (name, value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
        if name not in _OURS
    ]
    if wire_of(host) is Wire.V2:
        # no `kinds`: identity/account/sync events must flow (liveness, resyncs).
        query.extend(("collections", collection) for collection in wanted)
        if zstd_dictionary is not None:
            query.append(("zstdDictionary", str(zstd_dictionary)))
    else:
        query.extend(("wantedCollections", collection) for collection in wanted)
    if cursor is not None:
        query.append(("cursor", str(cursor)))
    path = parts.path or "/subscribe"
    return urlunsplit((parts.scheme, parts.netloc, path, urlencode(query), ""))


class HostRotation:
    """round-robin over the configured hosts (the fleet); `advance` reports whether
    the host changed. a fleet may mix wires: the cursor keeps a position for each."""

    def __init__(self, hosts: Sequence[str]) -> None:
        if not hosts:
            raise InvalidHost("no Jetstream host configured")
        self._hosts = tuple(check_host(host) for host in hosts)
        self._index = 0

    @property
    def current(self) -> str:
        return self._hosts[self._index]

    @property
    def hosts(self) -> tuple[str, ...]:
        return self._hosts

    def advance(self) -> bool:
        """move to the next host; True when that is a different host."""
        previous = self.current
        self._index = (self._index + 1) % len(self._hosts)
        return self.current != previous


def refusal_name(error: InvalidStatus) -> str | None:
    """the XRPC error name of a v2 pre-upgrade refusal (`{"error": "CursorTooOld", ...}`)."""
    if error.response.status_code != 400:
        return None
    try:
        envelope = orjson.loads(error.response.body[:4096])
    except orjson.JSONDecodeError:
        return None
    name = envelope.get("error") if isinstance(envelope, dict) else None
    return name if isinstance(name, str) and len(name) <= 64 else None
