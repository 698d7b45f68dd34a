"""catalog data for tests: loading catalog.json-shaped data into PostgreSQL, and
the eligibility cases (one track per rule, with the answer it must get).

the cases are data so every adapter can be run through all of them: the
in-memory catalog takes them via `InMemoryCatalog.from_json`, PostgreSQL via
`load_into_postgres`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

# the columns of schema/plyr.sql a catalog.json row may carry; a key outside
# these is a typo in test data and fails loudly.
_COLUMNS: dict[str, tuple[str, ...]] = {
    "artists": ("did", "handle", "display_name", "avatar_url", "pds_url", "deactivated"),
    "tracks": (
        "id",
        "title",
        "artist_did",
        "atproto_record_uri",
        "atproto_record_cid",
        "image_url",
        "thumbnail_url",
        "visibility",
        "self_labels",
        "operator_labels",
        "moderation_override",
        "publish_state",
        "support_gate",
        "created_at",
    ),
    "playlists": (
        "id",
        "owner_did",
        "name",
        "atproto_record_uri",
        "atproto_record_cid",
        "is_private",
        "items_json",
        "track_count",
        "created_at",
        "updated_at",
    ),
}
# label columns are NOT NULL jsonb: a JSON null in the data is stored as jsonb
# 'null' (a malformed label value the catalog must survive). items_json
# and support_gate are nullable, and there None means SQL NULL, their normal state.
_JSONB_NOT_NULL = frozenset({"self_labels", "operator_labels"})
_JSONB_NULLABLE = frozenset({"items_json", "support_gate"})
_TIMESTAMPS = frozenset({"created_at", "updated_at"})


async def load_into_postgres(dsn: str, catalog_dict: Mapping[str, Any]) -> None:
    """insert catalog.json-shaped data (artists, tracks, playlists) into the schema.

    a field missing from a row takes the schema's default (rows are grouped by
    the columns they carry and each group is one executemany), so the data
    means the same here as in `InMemoryCatalog.from_json`.
    """
    connection = await asyncpg.connect(dsn)
    try:
        async with connection.transaction():
            for table in ("artists", "tracks", "playlists"):
                await _insert_rows(connection, table, catalog_dict.get(table, []))
    finally:
        await connection.close()


async def _insert_rows(
    connection: asyncpg.Connection[asyncpg.Record], table: str, rows: Iterable[Mapping[str, Any]]
) -> None:
    columns = _COLUMNS[table]
    groups: dict[tuple[str, ...], list[tuple[object, ...]]] = {}
    for row in rows:
        unknown = set(row) - set(columns)
        if unknown:
            raise ValueError(f"{table} row has unknown fields {sorted(unknown)}: {dict(row)!r}")
        present = tuple(column for column in columns if column in row)
        groups.setdefault(present, []).append(
            tuple(_encode(column, row[column]) for column in present)
        )
    for present, values in groups.items():
        placeholders = ", ".join(f"${position}" for position in range(1, len(present) + 1))
        await connection.executemany(
            f"INSERT INTO {table} ({', '.join(present)}) VALUES ({placeholders})", values
        )


def _encode(column: str, value: Any) -> object:
    if column in _JSONB_NOT_NULL or (column in _JSONB_NULLABLE and value is not None):
        return json.dumps(value)  # asyncpg takes jsonb as text without a codec
    if column in _TIMESTAMPS and isinstance(value, str):
        moment = datetime.fromisoformat(value)
        # naive means UTC, as in InMemoryCatalog.from_json (asyncpg would use local time).
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return value


# --- the eligibility cases ----------------------------------------------------------

# an artist of the sample catalogue, so case tracks differ from a good track only
# in the column under test.
SAMPLE_ARTIST_DID = "did:plc:x66s2o4a2qpoastvjtboqbjb"
DEACTIVATED_ARTIST = {
    "did": "did:plc:deactivatedartist0000000",
    "handle": "gone.bsky.social",
    "display_name": "gone",
    "deactivated": True,
}
# no artists row has this DID. tracks.artist_did REFERENCES artists(did), so such a
# track cannot exist in PostgreSQL: that case runs in memory only, while the SQL
# still inner-joins artists so the rule holds there by construction too.
UNKNOWN_ARTIST_DID = "did:plc:nobodyplyrfmknows00000000"


@dataclass(frozen=True)
class EligibilityCase:
    """one track that differs from a surfaceable one by one rule, and the expected answer."""

    name: str
    eligible: bool
    fields: Mapping[str, Any] = field(default_factory=dict)
    # false where the schema's constraints make the row impossible in PostgreSQL.
    in_postgres: bool = True
    track_id: int = 0  # assigned below, one per case from 1001


_CASES = [
    EligibilityCase("public, nothing else set", True),
    EligibilityCase("publish_state published", True, {"publish_state": "published"}),
    EligibilityCase("publish_state NULL (legacy)", True, {"publish_state": None}),
    EligibilityCase("publish_state pending", False, {"publish_state": "pending"}),
    EligibilityCase("visibility private", False, {"visibility": "private"}),
    EligibilityCase("visibility unlisted", False, {"visibility": "unlisted"}),
    EligibilityCase("visibility supporters", False, {"visibility": "supporters"}),
    EligibilityCase("unrelated label", True, {"self_labels": ["lo-fi"]}),
    EligibilityCase("copyright in self_labels", False, {"self_labels": ["copyright-violation"]}),
    EligibilityCase(
        "copyright in operator_labels", False, {"operator_labels": ["copyright-violation"]}
    ),
    EligibilityCase(
        "copyright + override allow",
        True,
        {"operator_labels": ["copyright-violation"], "moderation_override": "allow"},
    ),
    EligibilityCase("override allow, no labels", True, {"moderation_override": "allow"}),
    EligibilityCase("sexual in self_labels", False, {"self_labels": ["sexual"]}),
    EligibilityCase("sexual in operator_labels", False, {"operator_labels": ["sexual"]}),
    EligibilityCase("porn in operator_labels", False, {"operator_labels": ["porn"]}),
    EligibilityCase(
        "porn + override allow", False, {"self_labels": ["porn"], "moderation_override": "allow"}
    ),
    EligibilityCase("override exclude", False, {"moderation_override": "exclude"}),
    EligibilityCase("override takedown", False, {"moderation_override": "takedown"}),
    # not one of the four documented values: a newer moderation action, so hidden.
    EligibilityCase("override unknown value", False, {"moderation_override": "quarantine"}),
    EligibilityCase("artist deactivated", False, {"artist_did": DEACTIVATED_ARTIST["did"]}),
    EligibilityCase(
        "artist row missing", False, {"artist_did": UNKNOWN_ARTIST_DID}, in_postgres=False
    ),
    # malformed label columns: moderation data we cannot read hides the track.
    EligibilityCase("self_labels a string", False, {"self_labels": "porn"}),
    EligibilityCase("operator_labels an object", False, {"operator_labels": {"label": "ok"}}),
    EligibilityCase("self_labels JSON null", False, {"self_labels": None}),
    EligibilityCase("labels with a non-string", False, {"operator_labels": ["lo-fi", 7]}),
    # gated tracks (plyr.fm's radio requires support_gate IS NULL)
    EligibilityCase("support_gate NULL", True, {"support_gate": None}),
    EligibilityCase("supporters gate", False, {"support_gate": {"type": "any"}}),
    EligibilityCase("copyright gate on public", False, {"support_gate": {"type": "copyright"}}),
    EligibilityCase(
        "copyright gate + override allow",
        False,
        {"support_gate": {"type": "copyright"}, "moderation_override": "allow"},
    ),
]
ELIGIBILITY_CASES: tuple[EligibilityCase, ...] = tuple(
    dataclasses.replace(case, track_id=1001 + index) for index, case in enumerate(_CASES)
)


def case_track(case: EligibilityCase) -> dict[str, Any]:
    """the catalog.json track row of a case: a good public track, then the case's fields."""
    row: dict[str, Any] = {
        "id": case.track_id,
        "title": f"case {case.name}",
        "artist_did": SAMPLE_ARTIST_DID,
        "atproto_record_uri": f"at://{SAMPLE_ARTIST_DID}/fm.plyr.track/case{case.track_id}",
        "atproto_record_cid": f"bafycase{case.track_id}",
        "image_url": f"https://images.example/case{case.track_id}.webp",
    }
    row.update(copy.deepcopy(dict(case.fields)))
    return row


def with_eligibility_cases(
    catalog: Mapping[str, Any],
    *,
    for_postgres: bool,
    cases: Sequence[EligibilityCase] = ELIGIBILITY_CASES,
) -> dict[str, Any]:
    """a copy of `catalog` plus the cases' tracks and the artists they need.

    `for_postgres` leaves out the cases the schema cannot hold (see `in_postgres`).
    """
    merged: dict[str, Any] = copy.deepcopy(dict(catalog))
    merged["artists"] = [*merged.get("artists", []), dict(DEACTIVATED_ARTIST)]
    merged["tracks"] = [
        *merged.get("tracks", []),
        *(case_track(case) for case in cases if case.in_postgres or not for_postgres),
    ]
    return merged


# --- a private playlist (the sample catalogue has only public ones) -----------------

PRIVATE_PLAYLIST_ID = "5f1d7c3e-0b7a-4d7e-9a43-6f0e2c1b8a11"


def private_playlist(track_uris: Sequence[str]) -> dict[str, Any]:
    """a private playlist row whose items_json lists `track_uris` among malformed entries.

    the malformed entries (3 of them) must be skipped, the URIs kept in order.
    """
    items: list[object] = [
        {"uri": uri, "cid": f"bafyitem{index}"} for index, uri in enumerate(track_uris)
    ]
    items[1:1] = [{"cid": "no uri"}, "not an object", {"uri": "https://not.an.at/uri"}]
    return {
        "id": PRIVATE_PLAYLIST_ID,
        "owner_did": SAMPLE_ARTIST_DID,
        "name": "just for me",
        "atproto_record_uri": None,
        "atproto_record_cid": None,
        "is_private": True,
        "items_json": items,
        "track_count": len(track_uris),
        "updated_at": "2026-01-02T03:04:05.678901+00:00",
    }
