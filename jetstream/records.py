"""validation of an `fm.plyr.list` record: is it a playlist, and which tracks does it hold.

the record is untrusted JSON from anyone on the network. only what the worker
needs survives (the track URIs, in order); everything else is checked for shape
and size and then dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from engine.types import MAX_LIST_ITEMS
from jetstream.contract import MAX_TRACK_URI_LENGTH
from jetstream.events import InvalidReason, SkipReason
from jetstream.syntax import record_uri_pattern

# list types that never get recommendations: an album is the artist's own
# tracklist and "liked" is a user's likes, not a curated playlist. any other
# value (and a missing listType) is treated as a playlist: plyr.fm's own lists
# predate the field, and a new type is more likely a playlist than not.
_NOT_RECOMMENDED: dict[object, SkipReason] = {
    "album": SkipReason.ALBUM,
    "liked": SkipReason.LIKED,
}


@dataclass(frozen=True)
class RecordLimits:
    """the bounds a list record must fit in (see `Settings.list_max_items` and friends)."""

    track_collection: str = "fm.plyr.track"
    max_items: int = MAX_LIST_ITEMS
    max_name_length: int = 1024
    track_uri_pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "track_uri_pattern", record_uri_pattern(self.track_collection))


def playlist_track_uris(
    record: object, limits: RecordLimits
) -> tuple[str, ...] | SkipReason | InvalidReason:
    """the playlist's track URIs in order; a skip reason for albums and liked lists;
    the first invalid reason otherwise. one bad item rejects the whole record: a
    partial playlist would produce recommendations for something nobody made."""
    if not isinstance(record, dict):
        return InvalidReason.BAD_RECORD

    list_type = record.get("listType")
    if list_type is not None and not isinstance(list_type, str):
        return InvalidReason.BAD_LIST_TYPE
    skip = _NOT_RECOMMENDED.get(list_type)
    if skip is not None:
        return skip

    name = record.get("name")
    if name is not None:
        if not isinstance(name, str):
            return InvalidReason.BAD_NAME
        if len(name) > limits.max_name_length:
            return InvalidReason.NAME_TOO_LONG

    items = record.get("items", [])
    if not isinstance(items, list):
        return InvalidReason.BAD_ITEMS
    if len(items) > limits.max_items:
        return InvalidReason.TOO_MANY_ITEMS

    matches_track_uri = limits.track_uri_pattern.fullmatch
    track_uris: list[str] = []
    for item in items:
        subject = item.get("subject") if isinstance(item, dict) else None
        uri = subject.get("uri") if isinstance(subject, dict) else None
        if not isinstance(uri, str):
            return InvalidReason.BAD_ITEM
        if len(uri) > MAX_TRACK_URI_LENGTH or matches_track_uri(uri) is None:
            return InvalidReason.BAD_TRACK_URI
        track_uris.append(uri)
    return tuple(track_uris)
