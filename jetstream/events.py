"""what a frame can turn into: a playlist change, a deliberate skip, or a counted rejection.

the decoder returns exactly one of these for any input, so the consumer's loop
is a match on four shapes and never an exception handler around untrusted data.
`time_us` rides along whenever the frame carried a valid one, because a frame
that was skipped or rejected is still "done": the cursor may move past it.
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


@dataclass(frozen=True, slots=True)
class ListDelete:
    """a playlist deleted: its pending recompute is cancelled and its state forgotten."""

    time_us: int
    did: str
    rkey: str
    rev: str
    playlist_uri: str


@dataclass(frozen=True, slots=True)
class Skipped:
    """a frame that is fine but none of our business."""

    reason: SkipReason
    time_us: int | None


@dataclass(frozen=True, slots=True)
class Rejected:
    """a frame that failed validation; counted by reason, never raised."""

    reason: InvalidReason
    time_us: int | None


ListChange = ListCommit | ListDelete
Event = ListCommit | ListDelete | Skipped | Rejected
