"""which of plyr.fm's tracks may be recommended, and how its rows are read.

a recommendation puts a track in front of someone who did not ask for it, so
it must be a track plyr.fm itself would surface on a chosen surface (feeds,
search, radio). the rules (DESIGN.md, "The engine"; the comments in
schema/plyr.sql) say a track is surfaceable iff:

- `visibility = 'public'`: 'unlisted' and 'private' are never shown to strangers,
  'supporters' only appears locked in feeds, never as a suggestion;
- `publish_state` is NULL (legacy rows, published) or 'published': 'pending'
  uploads are not finished;
- no 'copyright-violation' label, in `self_labels` or `operator_labels`, unless
  a moderator set `moderation_override = 'allow'` (a reviewed false positive);
- no 'sexual' or 'porn' label in either array: adult audio is hidden unless the
  viewer opted in, and this service computes one answer for every viewer, so
  it is always hidden here; 'allow' does not lift these (it answers the
  copyright question, not the audience one);
- `moderation_override` is NULL or 'allow': 'exclude' and 'takedown' keep the
  track off every chosen surface;
- `support_gate` is NULL: a supporters-only or copyright-gated track plays only
  for those it is gated for, and plyr.fm's own discovery (radio's corpus) requires
  `support_gate IS NULL` (so does this: a jsonb `null` is a value there too, a gate);
- its artist is known (the artists row exists) and not deactivated.

the rules live here twice, once per world, each the single source in its world:
`is_surfaceable` for the in-memory catalog and `SURFACEABLE_TRACK_SQL` for the
PostgreSQL adapter. tests run every case through both so they cannot drift.

where a row is odd, the safe answer is "do not surface":
- label columns that are not a JSON array of strings (a scalar, an object,
  null, an array holding a number) mean moderation data we cannot read, so the
  track is ineligible rather than treated as unlabelled;
- a `moderation_override` value other than the four documented ones is most
  likely a moderation action newer than this code, so it also hides the track.

this module also holds the row shapes the in-memory catalog keeps, the reading
of plyr.fm's `items_json` column, and the input bounds both adapters enforce,
because both adapters must agree on them.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from engine.types import MAX_LIST_ITEMS

PUBLIC_VISIBILITY: Final = "public"
PUBLISHED_STATES: Final = frozenset({None, "published"})
COPYRIGHT_LABEL: Final = "copyright-violation"
# adult audio: hidden for everyone here, whatever moderation_override says.
ADULT_LABELS: Final = frozenset({"sexual", "porn"})
OVERRIDE_ALLOW: Final = "allow"
# the overrides under which a track may still be surfaced (see the module docstring).
SURFACEABLE_OVERRIDES: Final = frozenset({None, OVERRIDE_ALLOW})

# input bounds shared by both catalog adapters (DESIGN.md: every limit explicit).
# a list record holds at most MAX_LIST_ITEMS, so one playlist resolves in one call.
MAX_TRACK_URIS_PER_CALL: Final = MAX_LIST_ITEMS
# the engine hydrates the fused candidate list; 2000 is far above what it asks.
MAX_TRACK_IDS_PER_CALL: Final = 2000
# the withdrawal check asks about every track in some live answer in one statement
# (answers x cached tracks, far fewer distinct ones); past this it is split.
MAX_CHECKED_TRACK_IDS: Final = 100_000
# items kept from a private playlist's items_json, as for a list record.
MAX_PLAYLIST_ITEMS: Final = MAX_LIST_ITEMS
# a track record URI is about 90 characters; anything far longer is not one.
MAX_TRACK_URI_LENGTH: Final = 512
# tracks.id is a PostgreSQL INTEGER; ids outside its range cannot exist.
MIN_TRACK_ID: Final = -(2**31)
MAX_TRACK_ID: Final = 2**31 - 1

# the same rules for PostgreSQL, as a WHERE fragment over `tracks AS t` joined
# (inner join: "not by nobody plyr.fm knows") to `artists AS a`.
# jsonb labels: `?` / `?|` test membership of string elements; the typeof and
# jsonpath guards make a malformed column hide the track (lax mode never raises).
# most tracks carry no label at all: two empty arrays skip the label checks, which
# halved the withdrawal check's query over 20,000 tracks (`python -m bench withdrawn`).
SURFACEABLE_TRACK_SQL: Final = """
    t.visibility = 'public'
    AND t.support_gate IS NULL
    AND (t.publish_state IS NULL OR t.publish_state = 'published')
    AND (t.moderation_override IS NULL OR t.moderation_override = 'allow')
    AND (
        (t.self_labels = '[]'::jsonb AND t.operator_labels = '[]'::jsonb)
        OR (
            jsonb_typeof(t.self_labels) = 'array'
            AND jsonb_typeof(t.operator_labels) = 'array'
            AND NOT jsonb_path_exists(t.self_labels, '$[*] ? (@.type() != "string")')
            AND NOT jsonb_path_exists(t.operator_labels, '$[*] ? (@.type() != "string")')
            AND NOT (t.self_labels ?| ARRAY['sexual', 'porn'])
            AND NOT (t.operator_labels ?| ARRAY['sexual', 'porn'])
            AND (
                t.moderation_override IS NOT DISTINCT FROM 'allow'
                OR NOT (t.self_labels ? 'copyright-violation'
                        OR t.operator_labels ? 'copyright-violation')
            )
        )
    )
    AND NOT a.deactivated
"""


@dataclass(frozen=True, slots=True)
class ArtistRecord:
    """an `artists` row, as the in-memory catalog keeps it."""

    did: str
    handle: str
    display_name: str
    avatar_url: str | None = None
    pds_url: str | None = None
    deactivated: bool = False


@dataclass(frozen=True, slots=True)
class TrackRecord:
    """a `tracks` row, as the in-memory catalog keeps it.

    `self_labels` / `operator_labels` are None when the stored JSON was not an
    array of strings (see `labels_from_json`); such a track is never surfaced.
    `gated` is whether `support_gate` holds a value (SQL NOT NULL): the gate's
    kind does not matter here, any gate keeps the track from being recommended.
    """

    id: int
    title: str
    artist_did: str
    record_uri: str | None = None
    record_cid: str | None = None
    image_url: str | None = None
    visibility: str = PUBLIC_VISIBILITY
    self_labels: frozenset[str] | None = field(default_factory=frozenset)
    operator_labels: frozenset[str] | None = field(default_factory=frozenset)
    moderation_override: str | None = None
    publish_state: str | None = None
    gated: bool = False


def labels_from_json(raw: object) -> frozenset[str] | None:
    """a label column's JSON value as a set, or None if it is not an array of strings."""
    if not isinstance(raw, list) or not all(isinstance(label, str) for label in raw):
        return None
    return frozenset(raw)


def is_surfaceable(track: TrackRecord, artist: ArtistRecord | None) -> bool:
    """whether `track` (by `artist`, None if plyr.fm has no such artist) may be recommended."""
    if artist is None or artist.deactivated:
        return False
    if track.visibility != PUBLIC_VISIBILITY or track.publish_state not in PUBLISHED_STATES:
        return False
    if track.gated:
        return False
    if track.moderation_override not in SURFACEABLE_OVERRIDES:
        return False
    if track.self_labels is None or track.operator_labels is None:
        return False
    labels = track.self_labels | track.operator_labels
    if labels & ADULT_LABELS:
        return False
    return COPYRIGHT_LABEL not in labels or track.moderation_override == OVERRIDE_ALLOW


def playlist_items_from_json(raw: object) -> tuple[tuple[str, ...], int]:
    """the track URIs of a private playlist's `items_json`, and how many entries were rejected.

    plyr.fm stores `[{"uri": ..., "cid": ...}, ...]`; entries of another shape
    (not an object, no string `at://` uri, an absurdly long uri) are skipped,
    and so is everything past `MAX_PLAYLIST_ITEMS`. a value that is not a list
    at all (NULL included) is an empty playlist; a non-null one counts as one
    rejection. duplicates are kept: a playlist may hold a track twice.
    """
    if raw is None:
        return (), 0
    if not isinstance(raw, list):
        return (), 1
    uris: list[str] = []
    rejected = 0
    for entry in raw:
        uri = entry.get("uri") if isinstance(entry, dict) else None
        if (
            isinstance(uri, str)
            and uri.startswith("at://")
            and len(uri) <= MAX_TRACK_URI_LENGTH
            and len(uris) < MAX_PLAYLIST_ITEMS
        ):
            uris.append(uri)
        else:
            rejected += 1
    return tuple(uris), rejected


def distinct_track_ids(
    track_ids: Iterable[int], *, bound: int = MAX_TRACK_IDS_PER_CALL
) -> list[int]:
    """the ids to hydrate: first occurrences only, in order, ids no row can have dropped.

    a duplicated id is hydrated once, at its first position; an id outside
    PostgreSQL's INTEGER range is unknown by construction. raises TypeError for
    a non-integer and ValueError past `bound` distinct ids.
    """
    # operator.index: numpy integers become ints, floats and strings raise TypeError.
    as_ints = (operator.index(track_id) for track_id in track_ids)
    wanted = dict.fromkeys(
        track_id for track_id in as_ints if MIN_TRACK_ID <= track_id <= MAX_TRACK_ID
    )
    if len(wanted) > bound:
        raise ValueError(f"a catalog call takes at most {bound} track ids, got {len(wanted)}")
    return list(wanted)


def distinct_track_uris(track_uris: Iterable[str]) -> list[str]:
    """the URIs to resolve, each once; TypeError for a non-string, ValueError past the bound."""
    wanted = list(dict.fromkeys(track_uris))
    for uri in wanted:
        if not isinstance(uri, str):
            raise TypeError(f"a track URI must be a string, got {type(uri).__name__}")
    if len(wanted) > MAX_TRACK_URIS_PER_CALL:
        raise ValueError(
            f"resolve_tracks takes at most {MAX_TRACK_URIS_PER_CALL} URIs, got {len(wanted)}"
        )
    return wanted
