"""turning a PDS's answer body into list records: bounded before it is parsed.

the body is bytes a stranger chose (issue 23, finding 1: through the atproto
SDK's models a 0.8 MB answer cost 0.6 s of CPU before it was refused). here it
is decoded once by orjson and checked by the consumer's own record validator
(`jetstream.records.playlist_track_uris`), nothing else: no model objects, no
copies.

orjson's cost follows the containers it builds more than the bytes (1 MiB of
`[],[],...` is ~100 ms; 1 MiB of real items ~7 ms). so before parsing, the
`{` and `[` bytes are counted (a C loop, well under a millisecond) against
what a valid record can hold: two per item, a few for the envelope, and the
name's length again in case it is all brackets. a body with more is refused
unread. the byte bound on the body itself is the client's (`worker.identity.pds`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import orjson

from jetstream.records import RecordLimits, playlist_track_uris
from jetstream.syntax import is_cid

CONTAINERS_PER_ITEM: Final = 4  # an item and its subject, twice over for extra fields
CONTAINER_SLACK: Final = 256  # the answer's envelope and a record's other fields
PAGE_RECORDS_DECODED: Final = 16  # a listRecords page may hold this many full records' worth


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


def record_containers(limits: RecordLimits) -> int:
    """the most `{`/`[` bytes a getRecord answer of a valid record can hold."""
    return CONTAINERS_PER_ITEM * limits.max_items + 2 * limits.max_name_length + CONTAINER_SLACK


def decode_record(body: bytes, limits: RecordLimits) -> ListRecord:
    """a `getRecord` answer (`{"uri", "cid", "value"}`) as a `ListRecord`.

    raises `RecordRejected`: `too_complex` (more structure than a record can
    have), `bad_response` (not JSON, not a getRecord answer), or the validator's
    reason for a record that is not a usable playlist."""
    answer = _parsed(body, record_containers(limits))
    if not isinstance(answer, dict):
        raise RecordRejected("bad_response")
    return _record(answer, limits)


def decode_page(
    body: bytes, limits: RecordLimits, uri_prefix: str
) -> tuple[dict[str, ListRecord | RecordRejected], str | None]:
    """a `listRecords` answer (`{"records": [...], "cursor"}`): each record under
    `uri_prefix` by URI (a bad one is its `RecordRejected`, the rest still count;
    any other URI is dropped, never trusted as one of this repo's), and the cursor
    (None once there are no records or no cursor). raises as `decode_record` does
    for the page as a whole; a page past `PAGE_RECORDS_DECODED` records' worth of
    structure is `too_complex` (the caller reads its records one by one)."""
    answer = _parsed(body, PAGE_RECORDS_DECODED * record_containers(limits))
    if not isinstance(answer, dict) or not isinstance(records := answer.get("records"), list):
        raise RecordRejected("bad_response")
    found: dict[str, ListRecord | RecordRejected] = {}
    for entry in records:
        uri = entry.get("uri") if isinstance(entry, dict) else None
        if not isinstance(uri, str) or not uri.startswith(uri_prefix):
            continue
        try:
            found[uri] = _record(entry, limits)
        except RecordRejected as rejected:
            found[uri] = rejected
    cursor = answer.get("cursor")
    if not isinstance(cursor, str) or not cursor or not found:
        cursor = None
    return found, cursor


def _parsed(body: bytes, max_containers: int) -> object:
    if body.count(b"{") + body.count(b"[") > max_containers:
        raise RecordRejected("too_complex")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:  # also bad UTF-8 and nesting past orjson's 1024
        raise RecordRejected("bad_response") from error


def _record(answer: dict[str, object], limits: RecordLimits) -> ListRecord:
    value = answer.get("value")
    if not isinstance(value, dict):
        raise RecordRejected("bad_response")  # a getRecord answer always has a record
    parsed = playlist_track_uris(value, limits)
    if not isinstance(parsed, tuple):
        raise RecordRejected(str(parsed))  # an InvalidReason or SkipReason (album, liked)
    cid = answer.get("cid")
    return ListRecord(parsed, cid if isinstance(cid, str) and is_cid(cid) else None)
