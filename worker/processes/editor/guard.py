"""who may use the editor page: the person at this machine, through its own address.

the page acts with the demo's credentials (it asks the API as each playlist's
owner, with the run's internal token, which stays in this process), so it must
be reachable from loopback only, and only as itself:

- the run serves it only when the API binds a loopback address;
- a request must come from a loopback peer (belt and braces for the above);
- its Host must be the page's own address: a web page elsewhere that points a
  name of its own at 127.0.0.1 (DNS rebinding) sends its own Host and is refused;
  and exactly one Host: with two, the last won (issue 23), so a request could be
  judged by one and routed by the other; now it is a 400;
- an edit (POST) must be same-origin: a foreign `Origin` or `Sec-Fetch-Site` is
  refused, and only `application/json` bodies are read, which no other site can
  send here without a CORS preflight this app never answers.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

SAFE_METHODS: Final = frozenset({"GET", "HEAD"})
SAME_SITE_FETCHES: Final = frozenset({"same-origin", "none"})


def is_loopback(host: str) -> bool:
    """a loopback address (127.0.0.0/8, ::1) or the name `localhost`."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def page_hosts(host: str, port: int) -> frozenset[str]:
    """the Host headers the page answers to: its own address and the loopback names."""
    own = f"[{host.strip('[]')}]" if ":" in host else host.lower()
    return frozenset(f"{name}:{port}" for name in {own, "127.0.0.1", "localhost", "[::1]"})


def refusal(
    *, client_host: str | None, method: str, headers: Mapping[str, str], hosts: frozenset[str]
) -> tuple[int, str] | None:
    """why a request is refused (status, reason), or None to serve it."""
    if client_host is None or not is_loopback(client_host):
        return 403, "the editor page answers loopback only"
    if headers.get("host", "").lower() not in hosts:
        return 403, "unexpected Host header"
    if method in SAFE_METHODS:
        return None
    origin = headers.get("origin")
    if origin is not None and origin.removeprefix("http://") not in hosts:
        return 403, "cross-origin edit"
    if headers.get("sec-fetch-site", "same-origin") not in SAME_SITE_FETCHES:
        return 403, "cross-site edit"
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        return 415, "edits are application/json"
    return None


class LoopbackOnly:
    """ASGI middleware: `refusal` for every HTTP request, counted by reason."""

    def __init__(self, app: ASGIApp, *, hosts: frozenset[str], refused: dict[str, int]) -> None:
        self.app = app
        self.hosts = hosts
        self.refused = refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {
            key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]
        }
        client = scope.get("client")
        hosts_sent = sum(1 for key, _ in scope["headers"] if key.lower() == b"host")
        refused = (400, "exactly one Host header") if hosts_sent > 1 else None
        refused = refused or refusal(
            client_host=client[0] if client else None,
            method=scope["method"],
            headers=headers,
            hosts=self.hosts,
        )
        if refused is None:
            await self.app(scope, receive, send)
            return
        status, reason = refused
        self.refused[reason] = self.refused.get(reason, 0) + 1
        body = reason.encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
