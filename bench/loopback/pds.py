"""a PDS stand-in on loopback: list records through `getRecord` and `listRecords`.

the reconcile loop reads public playlists' records from their owners' PDSes;
the tests and the journey benchmark point plyr.fm's `artists.pds_url` here.
records are held by at:// URI with their CID and answered as a PDS does
(`{"uri", "cid", "value"}`, `{"records": [...], "cursor"}`, or a 400
`RecordNotFound`). fault hooks: an error status (500), a 429, a stall, a body that is
not JSON, a body dripped a byte at a time (`drip_seconds` apart), a gzip-encoded
body, and a latency drawn per request from `latency` (a slow but working PDS).
a malformed or oversized record is simply such a `value` put here.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import random
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from bench.loopback.http import LoopbackHttpServer

PdsFault = Literal["stall", "error", "garbage", "drip", "encoded", "rate_limited"]
MAX_LIST_LIMIT = 100


def list_record_value(
    track_uris: list[str], *, name: str = "a playlist", list_type: str = "playlist"
) -> dict[str, Any]:
    """an `fm.plyr.list` record holding `track_uris`, as plyr.fm writes one."""
    return {
        "$type": "fm.plyr.list",
        "name": name,
        "listType": list_type,
        "items": [{"subject": {"uri": uri, "cid": "bafyreitrack"}} for uri in track_uris],
        "createdAt": "2026-01-01T00:00:00.000Z",
    }


@dataclass
class LoopbackPds(LoopbackHttpServer):
    """a PDS on 127.0.0.1 (port 0), in the caller's event loop or a thread of its own."""

    port: int = 0
    records: dict[str, tuple[str, Any]] = field(default_factory=dict)  # uri -> (cid, value)
    fault: PdsFault | None = None
    latency: tuple[float, float] = (0.0, 0.0)  # seconds, uniform in [low, high]
    seed: int = 0
    # the same latency for every read of one version of a record (drawn from a hash of
    # its URI and CID, not per request): a second read of it is its first's twin, so a
    # benchmark can tell a refetch's own cost from the PDS's share of it
    paired_latency: bool = False
    requests: Counter[str] = field(default_factory=Counter)  # by method
    # the client ends of the connections requests came on: how many a client opened
    peers: set[tuple[str, int]] = field(default_factory=set)
    drip_seconds: float = 0.05  # between two bytes of a "drip" answer
    thread_name: str = "loopback-pds"

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def put(self, record_uri: str, cid: str, value: Any) -> None:
        self.records[record_uri] = (cid, value)

    def remove(self, record_uri: str) -> None:
        self.records.pop(record_uri, None)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/xrpc/com.atproto.repo.getRecord", self._get_record)
        app.router.add_get("/xrpc/com.atproto.repo.listRecords", self._list_records)

    async def _answer_fault(self, record: str | None = None) -> web.StreamResponse | None:
        low, high = self.latency
        if high > 0:
            if self.paired_latency and record is not None:
                share = zlib.crc32(f"{record}#{self.records.get(record, ('',))[0]}".encode())
                await asyncio.sleep(low + (high - low) * share / 2**32)
            else:
                await asyncio.sleep(self._rng.uniform(low, high))
        if self.fault == "stall":
            assert self.stopping is not None
            await self.stopping.wait()
            return web.Response(status=503)
        if self.fault == "error":
            return web.json_response({"error": "InternalServerError"}, status=500)
        if self.fault == "rate_limited":
            return web.json_response({"error": "RateLimitExceeded"}, status=429)
        if self.fault == "garbage":
            return web.Response(body=b"\x00not json{", content_type="application/json")
        return None

    def _count(self, request: web.Request, method: str) -> None:
        self.requests[method] += 1
        transport = request.transport
        if transport is not None:
            self.peers.add(transport.get_extra_info("peername"))

    async def _get_record(self, request: web.Request) -> web.StreamResponse:
        self._count(request, "getRecord")
        query = request.query
        uri = f"at://{query.get('repo')}/{query.get('collection')}/{query.get('rkey')}"
        faulted = await self._answer_fault(uri)
        if faulted is not None:
            return faulted
        found = self.records.get(uri)
        if found is None:
            message = {"error": "RecordNotFound", "message": f"Could not locate record: {uri}"}
            return web.json_response(message, status=400)
        cid, value = found
        return await self._answer(request, {"uri": uri, "cid": cid, "value": value})

    async def _answer(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        """`body` as JSON, or as the "drip" and "encoded" faults mangle it."""
        if self.fault == "encoded":
            encoded = gzip.compress(json.dumps(body).encode())
            headers = {"content-encoding": "gzip", "content-type": "application/json"}
            return web.Response(body=encoded, headers=headers)
        if self.fault != "drip":
            return web.json_response(body)
        assert self.stopping is not None
        response = web.StreamResponse(headers={"content-type": "application/json"})
        await response.prepare(request)
        for byte in json.dumps(body).encode():
            await response.write(bytes([byte]))
            try:
                await asyncio.wait_for(self.stopping.wait(), self.drip_seconds)
            except TimeoutError:
                continue
            break  # the server is stopping: end the answer where it is
        return response

    async def _list_records(self, request: web.Request) -> web.StreamResponse:
        self._count(request, "listRecords")
        faulted = await self._answer_fault()
        if faulted is not None:
            return faulted
        query = request.query
        prefix = f"at://{query.get('repo')}/{query.get('collection')}/"
        try:
            limit = max(1, min(int(query.get("limit", "50")), MAX_LIST_LIMIT))
        except ValueError:
            return web.json_response({"error": "InvalidRequest"}, status=400)
        after = query.get("cursor")
        # rkeys in order, as a PDS lists a collection; the cursor is the last rkey sent
        rkeys = sorted(uri[len(prefix) :] for uri in self.records if uri.startswith(prefix))
        if after is not None:
            rkeys = [rkey for rkey in rkeys if rkey > after]
        page = rkeys[:limit]
        body: dict[str, Any] = {
            "records": [
                {
                    "uri": prefix + rkey,
                    "cid": self.records[prefix + rkey][0],
                    "value": self.records[prefix + rkey][1],
                }
                for rkey in page
            ]
        }
        if len(rkeys) > limit:
            body["cursor"] = page[-1]
        return await self._answer(request, body)
