"""a local PDS that serves list records through `com.atproto.repo.getRecord`.

the API reads a playlist's record from its owner's PDS when it computes a
version the worker has not seen. this server holds records by at:// URI with
their CID, answers as a PDS does (`{"uri", "cid", "value"}`, or a 400
`RecordNotFound`), counts requests, and has fault hooks: stall (to see the time
bound), an error status, a body that is not JSON, an oversized body; and a
delay, for a slow PDS that still answers.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from bench.loopback.http import LoopbackHttpServer

Fault = Literal["stall", "error", "garbage", "oversized"]


def list_record(track_uris: list[str], *, name: str = "a playlist") -> dict[str, Any]:
    """an `fm.plyr.list` record holding `track_uris`, as plyr.fm writes one."""
    return {
        "$type": "fm.plyr.list",
        "name": name,
        "listType": "playlist",
        "items": [{"subject": {"uri": uri, "cid": "bafyreitrack"}} for uri in track_uris],
        "createdAt": "2026-01-01T00:00:00.000Z",
    }


@dataclass
class PdsServer(LoopbackHttpServer):
    """a PDS on 127.0.0.1 (port 0), in the caller's event loop."""

    port: int = 0
    records: dict[str, tuple[str, dict[str, Any]]] = field(
        default_factory=dict
    )  # uri -> (cid, value)
    requests: list[dict[str, str]] = field(default_factory=list)  # the query of each getRecord
    hosts: list[str] = field(default_factory=list)  # the Host header of each getRecord
    fault: Fault | None = None
    delay: float = 0.0  # seconds every answer waits first (a slow but working PDS)

    def put(self, record_uri: str, cid: str, value: dict[str, Any]) -> None:
        self.records[record_uri] = (cid, value)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/xrpc/com.atproto.repo.getRecord", self._get_record)

    async def _get_record(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        self.requests.append(query)
        self.hosts.append(request.headers.get("host", ""))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fault == "stall":
            assert self.stopping is not None
            await self.stopping.wait()
            return web.Response(status=503)
        if self.fault == "error":
            return web.json_response({"error": "InternalServerError"}, status=500)
        if self.fault == "garbage":
            return web.Response(body=b"\x00not json{", content_type="application/json")
        if self.fault == "oversized":
            return web.Response(
                body=b" " * (2 * 1024 * 1024) + b"{}", content_type="application/json"
            )
        uri = f"at://{query.get('repo')}/{query.get('collection')}/{query.get('rkey')}"
        found = self.records.get(uri)
        if found is None:
            message = {"error": "RecordNotFound", "message": f"Could not locate record: {uri}"}
            return web.json_response(message, status=400)
        cid, value = found
        return web.json_response({"uri": uri, "cid": cid, "value": value})
