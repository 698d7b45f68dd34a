"""decoding one Jetstream v1 frame into a typed event. never raises.

any bytes or text in, exactly one of `ListCommit`, `ListDelete`, `Skipped`,
`Rejected` out. this is the only place the firehose's JSON is read, so it is
the place that decides what counts as valid: bounded size, the v1 envelope
(`did`, `time_us`, `kind`, `commit`), atproto identifier syntax, and the list
record itself (`jetstream.records`).

the checks are ordered cheapest-first for the common case: on the public
firehose most frames that reach us are identity/account events, which cost one
JSON parse and three dict lookups.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from jetstream.events import (
    Event,
    InvalidReason,
    ListCommit,
    ListDelete,
    Rejected,
    Skipped,
    SkipReason,
)
from jetstream.records import RecordLimits, playlist_track_uris
from jetstream.syntax import is_cid, is_did, is_rkey, is_tid, record_uri

# time_us is unix microseconds: anything outside (0, year ~2255) is not a clock.
MAX_TIME_US = 9_000_000_000_000_000

_OPERATIONS = frozenset({"create", "update", "delete"})


@dataclass(frozen=True)
class FrameLimits:
    """what a frame must fit in: the list collection we follow, the frame size bound
    and the record bounds."""

    list_collection: str = "fm.plyr.list"
    max_frame_bytes: int = 512 * 1024
    record: RecordLimits = field(default_factory=RecordLimits)


def decode_frame(frame: bytes | str, limits: FrameLimits) -> Event:
    """one frame to one event; malformed input becomes a `Rejected`, never an exception.

    a `str` frame is bounded by characters (a lower bound on its UTF-8 size), a
    `bytes` frame by bytes; the consumer receives bytes.
    """
    if len(frame) > limits.max_frame_bytes:
        return Rejected(InvalidReason.FRAME_TOO_LARGE, None)
    try:
        message = orjson.loads(frame)
    except orjson.JSONDecodeError:  # also raised for bad UTF-8, lone surrogates, deep nesting
        return Rejected(InvalidReason.NOT_JSON, None)
    if type(message) is not dict:
        return Rejected(InvalidReason.NOT_OBJECT, None)

    time_us = message.get("time_us")
    # `type(...) is int` on purpose: JSON `true` must not pass as the number 1.
    if type(time_us) is not int or not 0 < time_us < MAX_TIME_US:
        return Rejected(InvalidReason.BAD_TIME_US, None)

    kind = message.get("kind")
    if kind == "commit":
        return _decode_commit(message, time_us, limits)
    if kind == "identity":
        return Skipped(SkipReason.IDENTITY, time_us)
    if kind == "account":
        return Skipped(SkipReason.ACCOUNT, time_us)
    if type(kind) is str and 0 < len(kind) <= 64:
        # a newer Jetstream may add kinds; they are not ours, and not an error.
        return Skipped(SkipReason.UNKNOWN_KIND, time_us)
    return Rejected(InvalidReason.BAD_KIND, time_us)


def _decode_commit(message: dict[str, object], time_us: int, limits: FrameLimits) -> Event:
    commit = message.get("commit")
    if type(commit) is not dict:
        return Rejected(InvalidReason.BAD_COMMIT, time_us)

    collection = commit.get("collection")
    if collection != limits.list_collection:
        # wantedCollections makes this rare on a real host; a value we never use
        # needs no deeper validation than "it is a string".
        if type(collection) is str:
            return Skipped(SkipReason.OTHER_COLLECTION, time_us)
        return Rejected(InvalidReason.BAD_COLLECTION, time_us)

    did = message.get("did")
    if type(did) is not str or not is_did(did):
        return Rejected(InvalidReason.BAD_DID, time_us)
    operation = commit.get("operation")
    # the type check first: a list or dict is unhashable and would raise in the set lookup.
    if type(operation) is not str or operation not in _OPERATIONS:
        return Rejected(InvalidReason.BAD_OPERATION, time_us)
    rkey = commit.get("rkey")
    if type(rkey) is not str or not is_rkey(rkey):
        return Rejected(InvalidReason.BAD_RKEY, time_us)
    rev = commit.get("rev")
    if type(rev) is not str or not is_tid(rev):
        return Rejected(InvalidReason.BAD_REV, time_us)

    playlist_uri = record_uri(did, limits.list_collection, rkey)
    if operation == "delete":
        # deletes carry no record and no cid on the v1 wire.
        return ListDelete(time_us, did, rkey, rev, playlist_uri)

    cid = commit.get("cid")
    if type(cid) is not str or not is_cid(cid):
        return Rejected(InvalidReason.BAD_CID, time_us)

    outcome = playlist_track_uris(commit.get("record"), limits.record)
    if isinstance(outcome, SkipReason):
        return Skipped(outcome, time_us)
    if isinstance(outcome, InvalidReason):
        return Rejected(outcome, time_us)
    return ListCommit(time_us, did, rkey, rev, cid, playlist_uri, outcome)
