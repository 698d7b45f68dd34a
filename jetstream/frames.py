"""decoding one Jetstream v1 frame into a typed event. never raises.

any bytes or text in, exactly one event out (`jetstream.events`). this module
and `jetstream.frames_v2` are the only places the firehose's JSON is read, so
they decide what counts as valid: bounded size, the envelope (`did`,
`time_us`, `kind`, `commit`), atproto identifier syntax, and the list record
itself (`jetstream.records`). the commit itself is judged by `decode_commit`,
which both wires share (a v2 commit carries the same fields, flattened).

what the consumer subscribes to is plyr.fm's whole namespace (`fm.plyr.*`):
list commits are the work, track deletes are markers for others, and every
other plyr.fm commit is counted as proof that the host is not blind to
plyr.fm (`jetstream.blind`).

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
    TrackDelete,
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

    @property
    def namespace(self) -> str:
        """the NSID authority of the list collection with its trailing dot
        (`fm.plyr.`): staging's `fm.plyr.stg.list` follows `fm.plyr.stg.` only."""
        return self.list_collection.rsplit(".", 1)[0] + "."

    @property
    def wanted_collections(self) -> str:
        """the subscription filter: plyr.fm's whole namespace (`fm.plyr.*`)."""
        return self.namespace + "*"


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
    return decode_commit(message.get("did"), commit, time_us, None, limits)


def decode_commit(
    did: object, commit: dict[str, object], time_us: int, seq: int | None, limits: FrameLimits
) -> Event:
    """one commit of either wire: `commit` holds `collection`, `operation`, `rkey`,
    `rev`, `cid`, `record` (v1's `commit` object, or v2's message itself)."""
    collection = commit.get("collection")
    if collection == limits.list_collection:
        return _decode_list_commit(did, commit, time_us, seq, limits)
    if type(collection) is not str:
        return Rejected(InvalidReason.BAD_COLLECTION, time_us, seq)
    if collection == limits.record.track_collection and commit.get("operation") == "delete":
        return _decode_track_delete(did, commit, time_us, seq, collection)
    if collection.startswith(limits.namespace):
        # a value we never use needs no deeper validation than "it is a string".
        return Skipped(SkipReason.PLYR_ACTIVITY, time_us, seq)
    # the subscription filter makes this rare on a real host.
    return Skipped(SkipReason.OTHER_COLLECTION, time_us, seq)


def _identity(
    did: object, commit: dict[str, object], time_us: int, seq: int | None
) -> tuple[str, str, str] | Rejected:
    """the (did, rkey, rev) every commit we act on must carry, checked."""
    if type(did) is not str or not is_did(did):
        return Rejected(InvalidReason.BAD_DID, time_us, seq)
    rkey = commit.get("rkey")
    if type(rkey) is not str or not is_rkey(rkey):
        return Rejected(InvalidReason.BAD_RKEY, time_us, seq)
    rev = commit.get("rev")
    if type(rev) is not str or not is_tid(rev):
        return Rejected(InvalidReason.BAD_REV, time_us, seq)
    return did, rkey, rev


def _decode_track_delete(
    did: object, commit: dict[str, object], time_us: int, seq: int | None, collection: str
) -> Event:
    checked = _identity(did, commit, time_us, seq)
    if isinstance(checked, Rejected):
        return checked
    owner, rkey, rev = checked
    return TrackDelete(time_us, owner, rkey, rev, record_uri(owner, collection, rkey), seq)


def _decode_list_commit(
    did: object, commit: dict[str, object], time_us: int, seq: int | None, limits: FrameLimits
) -> Event:
    if type(did) is not str or not is_did(did):
        return Rejected(InvalidReason.BAD_DID, time_us, seq)
    operation = commit.get("operation")
    # the type check first: a list or dict is unhashable and would raise in the set lookup.
    if type(operation) is not str or operation not in _OPERATIONS:
        return Rejected(InvalidReason.BAD_OPERATION, time_us, seq)
    checked = _identity(did, commit, time_us, seq)
    if isinstance(checked, Rejected):
        return checked
    _, rkey, rev = checked

    playlist_uri = record_uri(did, limits.list_collection, rkey)
    if operation == "delete":
        # deletes carry no record and no cid on either wire.
        return ListDelete(time_us, did, rkey, rev, playlist_uri, seq)

    cid = commit.get("cid")
    if type(cid) is not str or not is_cid(cid):
        return Rejected(InvalidReason.BAD_CID, time_us, seq)

    outcome = playlist_track_uris(commit.get("record"), limits.record)
    if isinstance(outcome, SkipReason):
        return Skipped(outcome, time_us, seq)
    if isinstance(outcome, InvalidReason):
        return Rejected(outcome, time_us, seq)
    return ListCommit(time_us, did, rkey, rev, cid, playlist_uri, outcome, seq)
