"""what a frame can turn into: a playlist change, a marker, a deliberate skip, or a rejection.

the decoders (`jetstream.frames` for the v1 wire, `jetstream.frames_v2` for v2)
return exactly one of these for any input, so the consumer's loop is a match on
a few shapes and never an exception handler around untrusted data. `time_us`
rides along whenever the frame carried a valid one, because a frame that was
skipped or rejected is still "done": the cursor may move past it. `seq` is the
v2 wire's per-instance position (None on v1).

markers are events that ask for no recompute here but that others need: a
track deleted by its owner (its playlists' answers must drop it) and a repo
resync (`#sync`, v2 only: the repo's lists may have changed without commits).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class SkipReason(StrEnum):
    """a well-formed frame that asks for no work."""

    IDENTITY = "identity"
    ACCOUNT = "account"
    UNKNOWN_KIND = "unknown_kind"
    OTHER_COLLECTION = "other_collection"
    # a commit of one of plyr.fm's other collections (tracks, likes, comments...): no
    # work, but proof that the host is delivering plyr.fm's commits (`jetstream.blind`)
    PLYR_ACTIVITY = "plyr_activity"
    INFO = "info"  # a v2 `#info` advisory (e.g. OutdatedCursor: the cursor was clamped)
    SERVER_ERROR = "server_error"  # a v2 error frame; the host closes the stream after it
    ALBUM = "album"
    LIKED = "liked"
    # decided by the rev guard, not the decoder:
    DUPLICATE = "duplicate"  # the same rev again (a replay or a rewound cursor)
    STALE_REV = "stale_rev"  # older than the last accepted rev (out-of-order delivery)
    SAME_CID = "same_cid"  # a newer rev whose record is byte-for-byte the same
    STRUCK = "struck"  # an operator struck the task in docket
    # decided by the flood control: the repo already holds its cap of pending tasks
    FLOOD_SHED = "flood_shed"


class InvalidReason(StrEnum):
    """a frame that is not what Jetstream or the list lexicon promise."""

    FRAME_TOO_LARGE = "frame_too_large"
    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    BAD_TIME_US = "bad_time_us"
    BAD_KIND = "bad_kind"
    BAD_COMMIT = "bad_commit"
    BAD_COLLECTION = "bad_collection"
    BAD_DID = "bad_did"
    BAD_OPERATION = "bad_operation"
    BAD_RKEY = "bad_rkey"
    BAD_REV = "bad_rev"
    BAD_CID = "bad_cid"
    BAD_RECORD = "bad_record"
    BAD_LIST_TYPE = "bad_list_type"
    BAD_NAME = "bad_name"
    NAME_TOO_LONG = "name_too_long"
    BAD_ITEMS = "bad_items"
    TOO_MANY_ITEMS = "too_many_items"
    BAD_ITEM = "bad_item"
    BAD_TRACK_URI = "bad_track_uri"
    BAD_SEQ = "bad_seq"  # v2: seq missing or not a positive integer
    BAD_TIME = "bad_time"  # v2: `time` missing or not an RFC 3339 datetime
    BAD_TYPE = "bad_type"  # v2: an envelope or message `$type` that is not one
    BAD_COMPRESSION = "bad_compression"  # v2: a zstd frame that does not decompress


@dataclass(frozen=True, slots=True)
class ListCommit:
    """a create or update of a playlist: its newest state, to be recomputed."""

    time_us: int
    did: str
    rkey: str
    rev: str
    cid: str
    playlist_uri: str
    track_uris: tuple[str, ...]
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class ListDelete:
    """a playlist deleted: its pending recompute is cancelled and its state forgotten."""

    time_us: int
    did: str
    rkey: str
    rev: str
    playlist_uri: str
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class TrackDelete:
    """a track record deleted by its owner: handed to the consumer's marker sink
    (playlists holding it must stop recommending from it); no task here."""

    time_us: int
    did: str
    rkey: str
    rev: str
    track_uri: str
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class RepoResync:
    """a v2 `#sync`: the repo was re-synchronised upstream, so its lists may have
    changed without a commit we saw; handed to the marker sink for verification."""

    time_us: int
    did: str
    rev: str | None
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class Skipped:
    """a frame that is fine but none of our business."""

    reason: SkipReason
    time_us: int | None
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """a frame that failed validation; counted by reason, never raised."""

    reason: InvalidReason
    time_us: int | None
    seq: int | None = None


ListChange = ListCommit | ListDelete
Marker = TrackDelete | RepoResync
Event = ListCommit | ListDelete | TrackDelete | RepoResync | Skipped | Rejected
