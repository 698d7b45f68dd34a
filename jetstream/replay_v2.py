"""what the replay server needs to speak Jetstream v2 and to play a blind host.

the replay keeps its frames in the v1 shape (the samples are v1 captures) and
renders each one in the v2 framing when a v2 client asks: the envelope
`{"$type": "message", "payload": {...}}`, the commit flattened, `seq` from the
frame's index (plus a per-instance base, since seqs are per instance), `time`
from `time_us`. a v1-shaped `{"kind": "sync", ...}` frame becomes a `#sync`
(the v1 endpoint never sends those, as on a real host).

the request side follows the lexicon: `collections` (not `wantedCollections`,
which is a 400), `cursor` as a seq below 1e15 and a timestamp at or above,
`CursorTooOld` for a seq below the floor, `zstdDictionary=<id>` or
`UnknownZstdDictionary`, the dictionary itself at `getZstdDictionary`.
"""

from __future__ import annotations

import asyncio
import http
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Response

from jetstream.frames_v2 import MESSAGE_TYPE_PREFIX, rfc3339_of
from jetstream.subscription import V2_TIMESTAMP_CURSOR_FLOOR

_COMMIT_FIELDS = ("rev", "operation", "collection", "rkey", "record", "cid")
_MARKER_KINDS = frozenset({"identity", "account", "sync"})


@dataclass(frozen=True, slots=True)
class V2Request:
    """a checked v2 subscription request."""

    collections: tuple[str, ...]
    seq_cursor: int | None  # replay from this seq (inclusive)
    time_cursor: int | None  # replay from this time_us (a v1-style cursor)
    zstd: bool


class V2Refusal(Exception):
    """a pre-upgrade refusal: HTTP 400 with an XRPC error envelope."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message

    def response(self, connection: ServerConnection) -> Response:
        return bytes_response(
            connection,
            http.HTTPStatus.BAD_REQUEST,
            orjson.dumps({"error": self.name, "message": self.message}),
            "application/json",
        )


def parse_v2_request(query: str, *, seq_floor: int, dictionary_id: int | None) -> V2Request:
    """the request's meaning, or `V2Refusal` as a v2 host would refuse it."""
    params = parse_qs(query)
    for legacy, modern in (("wantedCollections", "collections"), ("wantedDids", "dids")):
        if legacy in params:
            raise V2Refusal("InvalidRequest", f"{legacy} is the v1 name; use {modern}")
    seq_cursor = time_cursor = None
    if "cursor" in params:
        try:
            cursor = int(params["cursor"][-1])
        except ValueError:
            raise V2Refusal("InvalidRequest", "cursor must be an integer") from None
        if cursor < 0:
            raise V2Refusal("InvalidRequest", "cursor must not be negative")
        if cursor >= V2_TIMESTAMP_CURSOR_FLOOR:
            time_cursor = cursor
        elif cursor < seq_floor:
            raise V2Refusal(
                "CursorTooOld",
                f"cursor {cursor} below lookback floor {seq_floor}; re-backfill from your last seq",
            )
        else:
            seq_cursor = cursor
    zstd = False
    if "zstdDictionary" in params:
        raw = params["zstdDictionary"][-1]
        if dictionary_id is None or raw != str(dictionary_id):
            raise V2Refusal(
                "UnknownZstdDictionary",
                f"unknown zstd dictionary id {raw}; current dictionary id is {dictionary_id}",
            )
        zstd = True
    return V2Request(tuple(params.get("collections", ())), seq_cursor, time_cursor, zstd)


def render_v2(payload: bytes, seq: int) -> bytes | None:
    """a v1-shaped frame in the v2 framing; the bytes unchanged when they are not a
    frame (garbage stays garbage); None for what v2 does not send."""
    try:
        message = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return payload
    if not isinstance(message, dict):
        return payload
    time_us = message.get("time_us")
    if type(time_us) is not int or time_us <= 0:
        return payload
    kind = message.get("kind")
    body: dict[str, object] = {
        "$type": f"{MESSAGE_TYPE_PREFIX}{kind}",
        "seq": seq,
        "did": message.get("did"),
        "time": rfc3339_of(time_us),
    }
    commit = message.get("commit")
    if kind == "commit" and isinstance(commit, dict):
        body.update((name, commit[name]) for name in _COMMIT_FIELDS if name in commit)
    elif kind in _MARKER_KINDS:
        body[str(kind)] = message.get(str(kind), {})
    return orjson.dumps({"$type": "message", "payload": body})


def outdated_cursor_info(resumed_seq: int) -> bytes:
    return orjson.dumps(
        {
            "$type": "message",
            "payload": {
                "$type": f"{MESSAGE_TYPE_PREFIX}info",
                "name": "OutdatedCursor",
                "message": f"cursor below the retention floor; resumed from seq {resumed_seq}",
            },
        }
    )


# the repo the blind host's identity events name (any valid DID would do), and where
# its stream time starts when it has no frames of its own.
BLIND_DID = "did:plc:x66s2o4a2qpoastvjtboqbjb"
BLIND_EPOCH_US = 1_000_000_000_000_000


def blind_identity(did: str, time_us: int) -> bytes:
    """what a blind host keeps sending: the rest of the network (v1 shape)."""
    return orjson.dumps(
        {"did": did, "time_us": time_us, "kind": "identity", "identity": {"did": did}}
    )


async def trickle(
    connection: ServerConnection,
    *,
    time_us: int,
    seq: int,
    interval_seconds: float,
    step_us: int,
    frame: Callable[[bytes, int], tuple[bytes, bool]],
) -> None:
    """the blind host's endless rest-of-the-network: an identity event every
    `interval_seconds`, `step_us` later in stream time each (0: real time), framed
    for the connection by `frame`, until the client leaves (sending then raises
    ConnectionClosed)."""
    step = step_us or max(1, round(interval_seconds * 1_000_000))
    while True:
        await asyncio.sleep(interval_seconds)
        time_us += step
        seq += 1
        payload, text = frame(blind_identity(BLIND_DID, time_us), seq)
        await connection.send(payload, text=text)


def bytes_response(
    connection: ServerConnection, status: http.HTTPStatus, body: bytes, content_type: str
) -> Response:
    response = connection.respond(status, "")
    headers = Headers(
        [(name, value) for name, value in response.headers.raw_items() if name != "Content-Type"]
    )
    headers["Content-Type"] = content_type
    del headers["Content-Length"]
    headers["Content-Length"] = str(len(body))
    return Response(response.status_code, response.reason_phrase, headers, body)
