"""decoding one Jetstream v2 frame (`network.bsky.jetstream.subscribeEvents`). never raises.

the v2 wire (bluesky-social/jetstream, lexicon `subscribeEvents.json`) frames
every event as `{"$type": "message", "payload": {...}}`, the payload's `$type`
naming the kind (`...#commit`, `#identity`, `#account`, `#sync`, `#info`). an
event carries the instance's `seq` (its cursor on that instance only) and
`time`, an RFC 3339 datetime with microseconds that stands in for v1's
`time_us`. a commit's fields are v1's `commit` object flattened into the
payload, so `jetstream.frames.decode_commit` judges it.

`{"$type": "error", ...}` is terminal (the host closes after it) and `#info`
carries no position; both are counted skips. with dictionary zstd
(`jetstream.zstd_frames`) a frame is first decompressed, bounded by the same
`max_frame_bytes` as a plain one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from jetstream.events import (
    Event,
    InvalidReason,
    Rejected,
    RepoResync,
    Skipped,
    SkipReason,
)
from jetstream.frames import MAX_TIME_US, FrameLimits, decode_commit
from jetstream.syntax import is_did, is_tid
from jetstream.zstd_frames import FrameDecompressor, is_zstd_frame

MESSAGE_TYPE_PREFIX = "network.bsky.jetstream.subscribeEvents#"
_MAX_SEQ = 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# "2024-09-09T19:46:02.329308Z" is 27 characters; a bound keeps fromisoformat cheap.
_MAX_TIME_LENGTH = 40


def decode_v2_frame(
    frame: bytes | str, limits: FrameLimits, decompressor: FrameDecompressor | None = None
) -> Event:
    """one v2 frame to one event; malformed input becomes a `Rejected`."""
    if decompressor is not None and isinstance(frame, bytes) and is_zstd_frame(frame):
        inflated = decompressor.decompress(frame, limits.max_frame_bytes)
        if isinstance(inflated, InvalidReason):
            return Rejected(inflated, None)
        frame = inflated
    if len(frame) > limits.max_frame_bytes:
        return Rejected(InvalidReason.FRAME_TOO_LARGE, None)
    try:
        envelope = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return Rejected(InvalidReason.NOT_JSON, None)
    if type(envelope) is not dict:
        return Rejected(InvalidReason.NOT_OBJECT, None)
    frame_type = envelope.get("$type")
    if frame_type == "error":
        return Skipped(SkipReason.SERVER_ERROR, None)
    if frame_type != "message":
        return Rejected(InvalidReason.BAD_TYPE, None)
    payload = envelope.get("payload")
    if type(payload) is not dict:
        return Rejected(InvalidReason.NOT_OBJECT, None)
    return _decode_message(payload, limits)


def _decode_message(payload: dict[str, object], limits: FrameLimits) -> Event:
    message_type = payload.get("$type")
    if type(message_type) is not str or not message_type.startswith(MESSAGE_TYPE_PREFIX):
        return Rejected(InvalidReason.BAD_TYPE, None)
    kind = message_type[len(MESSAGE_TYPE_PREFIX) :]
    if kind == "info":
        return Skipped(SkipReason.INFO, None)  # seq-less, time-less: no position

    seq = payload.get("seq")
    if type(seq) is not int or not 0 < seq <= _MAX_SEQ:
        return Rejected(InvalidReason.BAD_SEQ, None)
    time_us = time_us_of(payload.get("time"))
    if time_us is None:
        return Rejected(InvalidReason.BAD_TIME, None, seq)

    if kind == "commit":
        return decode_commit(payload.get("did"), payload, time_us, seq, limits)
    if kind == "identity":
        return Skipped(SkipReason.IDENTITY, time_us, seq)
    if kind == "account":
        return Skipped(SkipReason.ACCOUNT, time_us, seq)
    if kind == "sync":
        return _decode_sync(payload, time_us, seq)
    if 0 < len(kind) <= 64:
        return Skipped(SkipReason.UNKNOWN_KIND, time_us, seq)
    return Rejected(InvalidReason.BAD_KIND, time_us, seq)


def _decode_sync(payload: dict[str, object], time_us: int, seq: int) -> Event:
    did = payload.get("did")
    if type(did) is not str or not is_did(did):
        return Rejected(InvalidReason.BAD_DID, time_us, seq)
    # the wrapped upstream event carries the repo's new rev; a resync without one
    # is still a resync (the repo must be verified either way).
    upstream = payload.get("sync")
    rev = upstream.get("rev") if type(upstream) is dict else None
    return RepoResync(time_us, did, rev if type(rev) is str and is_tid(rev) else None, seq)


def time_us_of(value: object) -> int | None:
    """unix microseconds of an RFC 3339 datetime with an explicit zone; None if it
    is not one or lies outside the range `time_us` allows."""
    if type(value) is not str or not 0 < len(value) <= _MAX_TIME_LENGTH:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None  # a time without a zone is not a position
    time_us = (moment - _EPOCH) // _MICROSECOND
    return time_us if 0 < time_us < MAX_TIME_US else None


def rfc3339_of(time_us: int) -> str:
    """the v2 wire's `time` for unix microseconds (six fractional digits, UTC)."""
    return (_EPOCH + timedelta(microseconds=time_us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
