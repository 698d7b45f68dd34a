"""turning a PDS's answer body into list records: bounded before it is parsed.

the body is bytes a stranger chose (issue 23, finding 1: through the atproto
SDK's models a 0.8 MB answer cost 0.6 s of CPU before it was refused). here it
is decoded once by orjson and checked by the consumer's own record validator
(`jetstream.records.playlist_track_uris`), nothing else: no model objects, no
copies.

orjson's cost follows the values it builds more than the bytes (512 KiB of
`[],[],...` is ~80 ms, of fields `"k1":0,"k2":0,...` ~12 ms, of real items
~4 ms). so before parsing, the bytes that start or separate values (`{ [ , :`)
are counted (C loops, well under a millisecond) against what a valid record
can hold: ten per item (`{"subject":{"uri":"at://did:plc:…","cid":…}},`) with
room to spare, the name's length again in case it is all commas, and some
for the envelope and other fields. a body with more is refused unread
(`too_complex`), so what is parsed is a few thousand values at most. the byte
bound on the body itself is the client's (`worker.identity.pds`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import orjson

from jetstream.records import RecordLimits, playlist_track_uris
from jetstream.syntax import is_cid

# the bytes counted: each starts a container or separates two values (or a key and its value)
_STRUCTURE: Final = (b"{", b"[", b",", b":")
STRUCTURE_PER_ITEM: Final = 16  # a valid item has 10 (did:web URIs a few more)
STRUCTURE_SLACK: Final = 1024  # the answer's envelope and a record's other fields
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


def record_structure(limits: RecordLimits) -> int:
    """the most `{ [ , :` bytes a getRecord answer of a valid record may hold."""
    return STRUCTURE_PER_ITEM * limits.max_items + 2 * limits.max_name_length + STRUCTURE_SLACK


def decode_record(body: bytes, limits: RecordLimits) -> ListRecord:
    """a `getRecord` answer (`{"uri", "cid", "value"}`) as a `ListRecord`.

    raises `RecordRejected`: `too_complex` (more structure than a record can
    have), `bad_response` (not JSON, not a getRecord answer), or the validator's
    reason for a record that is not a usable playlist."""
    answer = _parsed(body, record_structure(limits))
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
    answer = _parsed(body, PAGE_RECORDS_DECODED * record_structure(limits))
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


def _parsed(body: bytes, max_structure: int) -> object:
    counted = 0
    for byte in _STRUCTURE:
        counted += body.count(byte)
        if counted > max_structure:
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
