"""which host to connect to next and what to ask it for.

hosts rotate on every reconnect: a host that dropped us may be restarting or
partitioned, and the public v1 hosts are independent copies of the firehose.
since each host stamps `time_us` itself, a cursor taken on one host is only
approximately positioned on another; switching hosts therefore rewinds further
(`jetstream_rotation_rewind_seconds`) than reconnecting to the same one.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


class InvalidHost(ValueError):
    """a configured Jetstream endpoint that can never work (a configuration error)."""


def check_host(host: str) -> str:
    """`host` if it is a ws:// or wss:// URL with a network location."""
    parts = urlsplit(host)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise InvalidHost(f"not a ws:// or wss:// URL: {host!r}")
    return host


def subscribe_url(host: str, collection: str, cursor: int | None) -> str:
    """`host` with `wantedCollections` and `cursor` set (any of ours already in the
    URL are replaced; other query parameters, e.g. compression, are kept)."""
    parts = urlsplit(host)
    query = [
        (name, value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
        if name not in ("wantedCollections", "cursor")
    ]
    query.append(("wantedCollections", collection))
    if cursor is not None:
        query.append(("cursor", str(cursor)))
    path = parts.path or "/subscribe"
    return urlunsplit((parts.scheme, parts.netloc, path, urlencode(query), ""))


class HostRotation:
    """round-robin over the configured hosts; `advance` reports whether the host changed."""

    def __init__(self, hosts: Sequence[str]) -> None:
        if not hosts:
            raise InvalidHost("no Jetstream host configured")
        self._hosts = tuple(check_host(host) for host in hosts)
        self._index = 0

    @property
    def current(self) -> str:
        return self._hosts[self._index]

    def advance(self) -> bool:
        """move to the next host; True when that is a different host."""
        previous = self.current
        self._index = (self._index + 1) % len(self._hosts)
        return self.current != previous
