"""the editor page over HTTP, added to the embedded run's API app (never `plyr-recs api`'s).

    GET  /                                         the page (static/index.html)
    GET  /editor/static/{editor.css,editor.js}     its style and script
    GET  /editor/api/status                        the session's progress, the answers' tally
    GET  /editor/api/playlists                     the playlists plyr.fm knows
    GET  /editor/api/playlists/{id}                one, with its tracks and its version's path
    GET  /editor/api/playlists/{id}/recommendations?offset=0   the API's answer, its
                                                   source and time ("more": offset 3, 6 ...)
    POST /editor/api/playlists/{id}/tracks         {"track_id": n}: add it (a new version)
    GET  /editor/api/events                        the live events (server-sent events)
    GET  /editor/pds/xrpc/com.atproto.repo.getRecord   the demo PDS: the records it wrote

every route is behind `guard.LoopbackOnly`. the files are the package's own, read
once; nothing the page loads comes from anywhere else (its CSP says so). an edit's
body must arrive within `EDIT_BODY_SECONDS` (408 and close): one that never finished
held its request open for good (issue 23).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Final

import orjson
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Mount, Route

from worker.api.app import PLAYLIST_ID_RE
from worker.processes.editor.events import MAX_STREAMS, LiveEvent
from worker.processes.editor.guard import LoopbackOnly
from worker.processes.editor.site import EditorSite
from worker.processes.editor.writer import EditRefused

STATIC_TYPES: Final = {
    "index.html": "text/html; charset=utf-8",
    "editor.css": "text/css; charset=utf-8",
    "editor.js": "text/javascript; charset=utf-8",
}
HEADERS: Final = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
MAX_EDIT_BYTES: Final = 256  # {"track_id": n} is a few bytes
# a browser sends those few bytes with the headers; 10 s covers any link still usable
EDIT_BODY_SECONDS: Final = 10.0
MAX_TRACK_ID: Final = 2**53  # what a JSON number keeps exactly
SSE_RETRY_MS: Final = 3000
PDS_PATH: Final = "/pds"  # under /editor: the demo's PDS base URL is {page}/editor/pds

Handler = Callable[[Request], Awaitable[Response]]


def load_static() -> dict[str, bytes]:
    folder = resources.files("worker.processes.editor") / "static"
    return {name: (folder / name).read_bytes() for name in STATIC_TYPES}


def mount_editor(
    app: FastAPI,
    site: EditorSite,
    *,
    hosts: frozenset[str],
    body_timeout_seconds: float = EDIT_BODY_SECONDS,
) -> None:
    """serve the page on `app`, for requests whose Host is one of `hosts`."""
    files = load_static()

    def static_file(name: str) -> Response:
        return Response(files[name], media_type=STATIC_TYPES[name], headers=HEADERS)

    async def index(request: Request) -> Response:
        return static_file("index.html")

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC_TYPES or name == "index.html":
            return _json({"detail": "not found"}, 404)
        return static_file(name)

    async def status(request: Request) -> Response:
        return _json(site.status())

    async def playlists(request: Request) -> Response:
        return _json(await site.playlists())

    async def playlist(request: Request) -> Response:
        return _json(await site.playlist(_playlist_id(request)))

    async def recommendations(request: Request) -> Response:
        return _json(await site.recommendations(_playlist_id(request), _offset(request)))

    async def add_track(request: Request) -> Response:
        track_id = await _track_id(request, body_timeout_seconds)
        return _json(site.add_track(_playlist_id(request), track_id))

    async def get_record(request: Request) -> Response:
        query = request.query_params
        found = site.get_record(
            query.get("repo", ""), query.get("collection", ""), query.get("rkey", "")
        )
        return _json(found)

    async def events(request: Request) -> Response:
        if site.hub.streams >= MAX_STREAMS:
            return _json({"detail": "too many event streams open"}, 503)
        after = request.headers.get("last-event-id", "0")
        stream = site.hub.stream(int(after) if after.isdigit() and len(after) < 16 else 0)

        async def lines() -> AsyncIterator[bytes]:
            yield f"retry: {SSE_RETRY_MS}\n\n".encode()
            async for event in stream:
                yield b": keepalive\n\n" if event is None else _sse(event)

        headers = HEADERS | {"x-accel-buffering": "no"}
        return StreamingResponse(lines(), media_type="text/event-stream", headers=headers)

    editor = Starlette(
        routes=[
            Route("/static/{name}", static),
            Route("/api/status", status),
            Route("/api/playlists", playlists),
            Route("/api/playlists/{playlist_id}", _refusing(site, playlist)),
            Route(
                "/api/playlists/{playlist_id}/recommendations",
                _refusing(site, recommendations),
            ),
            Route(
                "/api/playlists/{playlist_id}/tracks",
                _refusing(site, add_track),
                methods=["POST"],
            ),
            Route("/api/events", events),
            Route(PDS_PATH + "/xrpc/com.atproto.repo.getRecord", _refusing(site, get_record)),
        ]
    )
    page = Starlette(routes=[Route("/", index)])
    app.router.routes.append(
        Route("/", LoopbackOnly(page, hosts=hosts, refused=site.refused), methods=["GET", "HEAD"])
    )
    app.router.routes.append(
        Mount("/editor", LoopbackOnly(editor, hosts=hosts, refused=site.refused))
    )


def _json(value: object, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status, HEADERS, media_type="application/json")


def _refused(site: EditorSite, refused: EditRefused) -> Response:
    site.refused[refused.reason] = site.refused.get(refused.reason, 0) + 1
    response = _json({"detail": refused.reason}, refused.status)
    if refused.status == 408:  # the rest of the body may still come: not on this connection
        response.headers["connection"] = "close"
    return response


def _refusing(site: EditorSite, handler: Handler) -> Handler:
    """the handler, with an `EditRefused` answered as its status and counted."""

    async def refusing(request: Request) -> Response:
        try:
            return await handler(request)
        except EditRefused as refused:
            return _refused(site, refused)

    return refusing


def _playlist_id(request: Request) -> str:
    raw = request.path_params.get("playlist_id", "")
    if not isinstance(raw, str) or PLAYLIST_ID_RE.fullmatch(raw) is None:
        raise EditRefused(404, "unknown playlist")
    return raw


def _offset(request: Request) -> int:
    raw = request.query_params.get("offset", "0")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 3:  # the API's offset: 0..20
        raise EditRefused(422, "offset must be a small non-negative integer")
    return int(raw)


async def _track_id(request: Request, timeout_seconds: float) -> int:
    """the edit's `track_id`, read from a small JSON body within `timeout_seconds`."""
    body = b""
    try:
        async with asyncio.timeout(timeout_seconds):
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_EDIT_BYTES:
                    raise EditRefused(413, "an edit is a small JSON object")
    except TimeoutError:
        raise EditRefused(408, "the edit's body did not arrive in time") from None
    try:
        edit = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise EditRefused(422, "an edit is JSON") from None
    track_id = edit.get("track_id") if isinstance(edit, dict) else None
    if type(track_id) is not int or not 1 <= track_id <= MAX_TRACK_ID:
        raise EditRefused(422, "track_id must be a positive integer")
    return track_id


def _sse(event: LiveEvent) -> bytes:
    # one JSON line per event: `data:` may not contain a newline, and orjson writes none
    return b"id: %d\ndata: %s\n\n" % (event.id, orjson.dumps(event.as_json()))
