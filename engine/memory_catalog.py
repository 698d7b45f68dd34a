"""the embedded Catalog: plyr.fm's tracks, artists and playlists held in dicts.

it serves the embedded mode (`plyr-recs run`, a generated catalogue of about
20,000 tracks) and the tests, with the same semantics as the PostgreSQL adapter
(tests run both through the same cases). every lookup is a dict access, so a
hydrate of n ids is O(n) whatever the catalogue's size.

the embedded demo edits playlists as it goes, so unlike plyr.fm's database
(which this service never writes) playlists can be upserted and removed here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.eligibility import (
    MAX_CHECKED_TRACK_IDS,
    ArtistRecord,
    TrackRecord,
    distinct_track_ids,
    distinct_track_uris,
    is_surfaceable,
    labels_from_json,
    playlist_items_from_json,
)
from engine.ports import playlist_page_size
from engine.types import PlaylistRef, PlaylistRow, Track

logger = logging.getLogger(__name__)


class InMemoryCatalog:
    """a Catalog over plain records (see engine.eligibility for the row shapes)."""

    def __init__(
        self,
        *,
        artists: Iterable[ArtistRecord] = (),
        tracks: Iterable[TrackRecord] = (),
        playlists: Iterable[PlaylistRow] = (),
    ) -> None:
        self._artists: dict[str, ArtistRecord] = {artist.did: artist for artist in artists}
        self._tracks: dict[int, TrackRecord] = {}
        self._track_ids_by_uri: dict[str, int] = {}
        for track in tracks:
            self._add_track(track)
        self._playlists: dict[str, PlaylistRow] = {}
        self._playlist_ids_by_uri: dict[str, str] = {}
        for playlist in playlists:
            self.upsert_playlist(playlist)
        # entries of private playlists' items_json skipped as malformed (from_json only).
        self.rejected_playlist_items = 0

    @classmethod
    def from_json(cls, catalog: Mapping[str, Any]) -> InMemoryCatalog:
        """a catalog from the shape of samples/catalog.json: {artists, tracks, playlists}.

        missing optional fields take the schema's defaults; a field of the wrong
        type raises ValueError naming the row, since this is a demo's or a
        test's data and a silent skip would hide the mistake.
        """
        artists = [_artist_from_json(row) for row in _rows(catalog, "artists")]
        tracks = [_track_from_json(row) for row in _rows(catalog, "tracks")]
        loaded_at = datetime.now(UTC)
        rejected = 0
        playlists: list[PlaylistRow] = []
        for row in _rows(catalog, "playlists"):
            playlist, playlist_rejected = _playlist_from_json(row, default_time=loaded_at)
            playlists.append(playlist)
            rejected += playlist_rejected
        instance = cls(artists=artists, tracks=tracks, playlists=playlists)
        instance.rejected_playlist_items = rejected
        return instance

    @classmethod
    def load(cls, path: Path | str) -> InMemoryCatalog:
        """a catalog from a catalog.json file."""
        catalog = json.loads(Path(path).read_text())
        if not isinstance(catalog, dict):
            raise ValueError(f"{path}: a catalog is a JSON object")
        return cls.from_json(catalog)

    # --- the Catalog port ------------------------------------------------------

    async def resolve_tracks(self, track_uris: Sequence[str]) -> dict[str, int]:
        resolved: dict[str, int] = {}
        for uri in distinct_track_uris(track_uris):
            track_id = self._track_ids_by_uri.get(uri)
            if track_id is not None:
                resolved[uri] = track_id
        return resolved

    async def track_uris(self, track_ids: Sequence[int]) -> dict[int, str]:
        known: dict[int, str] = {}
        for track_id in track_ids:
            track = self._tracks.get(track_id)
            if track is not None and track.record_uri is not None:
                known[track_id] = track.record_uri
        return known

    async def resolve_playlist(self, playlist_uri: str) -> PlaylistRef | None:
        playlist_id = self._playlist_ids_by_uri.get(playlist_uri)
        if playlist_id is None:
            return None
        playlist = self._playlists[playlist_id]
        return PlaylistRef(playlist_id=playlist.playlist_id, owner_did=playlist.owner_did)

    async def resolve_playlist_and_tracks(
        self, playlist_uri: str, track_uris: Sequence[str]
    ) -> tuple[PlaylistRef | None, dict[str, int]]:
        return await self.resolve_playlist(playlist_uri), await self.resolve_tracks(track_uris)

    async def get_playlist(self, playlist_id: str) -> PlaylistRow | None:
        playlist = self._playlists.get(playlist_id)
        if playlist is None or playlist.owner_pds_url is not None:
            return playlist
        # as the PostgreSQL adapter joins artists.pds_url: the owner's PDS, if known.
        owner = self._artists.get(playlist.owner_did)
        if owner is None or owner.pds_url is None:
            return playlist
        return dataclasses.replace(playlist, owner_pds_url=owner.pds_url)

    async def hydrate(self, track_ids: Sequence[int]) -> list[Track]:
        hydrated: list[Track] = []
        for track_id in distinct_track_ids(track_ids):
            track = self._tracks.get(track_id)
            if track is None:
                continue
            artist = self._artists.get(track.artist_did)
            if artist is None or not is_surfaceable(track, artist):
                continue
            hydrated.append(
                Track(
                    id=track.id,
                    title=track.title,
                    artist_handle=artist.handle,
                    artist_display_name=artist.display_name,
                    image_url=track.image_url,
                )
            )
        return hydrated

    async def eligible_ids(self, track_ids: Sequence[int]) -> set[int]:
        eligible: set[int] = set()
        for track_id in distinct_track_ids(track_ids, bound=MAX_CHECKED_TRACK_IDS):
            track = self._tracks.get(track_id)
            if track is not None and is_surfaceable(track, self._artists.get(track.artist_did)):
                eligible.add(track_id)
        return eligible

    async def list_playlists(self, *, after: str | None, limit: int) -> list[PlaylistRow]:
        # keyset pagination needs only a total order that the `after` test agrees
        # with (code points here; the database's collation there). the demo holds
        # hundreds of playlists, so sorting per page costs nothing.
        ids = sorted(pid for pid in self._playlists if after is None or pid > after)
        page = []
        for playlist_id in ids[: playlist_page_size(limit)]:
            row = await self.get_playlist(playlist_id)
            assert row is not None
            page.append(dataclasses.replace(row, items=None))
        return page

    async def count_playlists(self) -> int:
        return len(self._playlists)

    # --- the embedded demo's edits -------------------------------------------------

    def upsert_playlist(self, playlist: PlaylistRow) -> None:
        """add a playlist or replace the one with its id (its record URI may change)."""
        previous = self._playlists.get(playlist.playlist_id)
        if previous is not None and previous.record_uri is not None:
            self._playlist_ids_by_uri.pop(previous.record_uri, None)
        if playlist.record_uri is not None:
            holder = self._playlist_ids_by_uri.get(playlist.record_uri)
            if holder is not None and holder != playlist.playlist_id:
                # playlists.atproto_record_uri is UNIQUE in plyr.fm's schema.
                raise ValueError(f"{playlist.record_uri} already belongs to playlist {holder}")
            self._playlist_ids_by_uri[playlist.record_uri] = playlist.playlist_id
        self._playlists[playlist.playlist_id] = playlist

    def replace_track(self, track: TrackRecord) -> None:
        """add a track or replace the one with its id (a moderator's edit, in tests and
        benchmarks: plyr.fm's database is edited by plyr.fm)."""
        previous = self._tracks.get(track.id)
        uri = previous.record_uri if previous is not None else None
        if uri is not None and self._track_ids_by_uri.get(uri) == track.id:
            del self._track_ids_by_uri[uri]
        self._add_track(track)

    def replace_artist(self, artist: ArtistRecord) -> None:
        """add an artist or replace the one with its DID (the demo's page gives the
        session's owners its PDS: plyr.fm's `artists.pds_url`)."""
        self._artists[artist.did] = artist

    def track(self, track_id: int) -> TrackRecord | None:
        return self._tracks.get(track_id)

    def remove_playlist(self, playlist_id: str) -> None:
        """forget a playlist (no error if it is unknown)."""
        playlist = self._playlists.pop(playlist_id, None)
        if playlist is not None and playlist.record_uri is not None:
            self._playlist_ids_by_uri.pop(playlist.record_uri, None)

    def add_track(self, track: TrackRecord) -> None:
        """a track plyr.fm has just ingested (the demo's fresh uploads)."""
        self._add_track(track)

    @property
    def track_count(self) -> int:
        return len(self._tracks)

    def _add_track(self, track: TrackRecord) -> None:
        self._tracks[track.id] = track
        if track.record_uri is not None:
            # tracks.atproto_record_uri is not unique in plyr.fm's schema; the
            # PostgreSQL adapter answers the lowest id, so this one does too.
            known = self._track_ids_by_uri.get(track.record_uri)
            if known is None or track.id < known:
                self._track_ids_by_uri[track.record_uri] = track.id


# --- catalog.json rows -------------------------------------------------------------


def _rows(catalog: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    rows = catalog.get(key, [])
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ValueError(f"catalog[{key!r}] must be a list of objects")
    return rows


def _field(row: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = row.get(name)
    if not isinstance(value, kind):
        raise ValueError(f"{name}={value!r} has the wrong type in {dict(row)!r}")
    return value


def _artist_from_json(row: Mapping[str, Any]) -> ArtistRecord:
    return ArtistRecord(
        did=_field(row, "did", str),
        handle=_field(row, "handle", str),
        display_name=_field(row, "display_name", str),
        avatar_url=_field(row, "avatar_url", (str, type(None))),
        pds_url=_field(row, "pds_url", (str, type(None))),
        deactivated=bool(_field(row, "deactivated", bool)) if "deactivated" in row else False,
    )


def _track_from_json(row: Mapping[str, Any]) -> TrackRecord:
    track_id = _field(row, "id", int)
    if isinstance(track_id, bool):
        raise ValueError(f"id={track_id!r} is not a track id in {dict(row)!r}")
    optional_text = (str, type(None))
    return TrackRecord(
        id=track_id,
        title=_field(row, "title", str),
        artist_did=_field(row, "artist_did", str),
        record_uri=_field(row, "atproto_record_uri", optional_text),
        record_cid=_field(row, "atproto_record_cid", optional_text),
        image_url=_field(row, "image_url", optional_text),
        visibility=_field(row, "visibility", str) if "visibility" in row else "public",
        # labels are kept as found: a malformed value becomes None (never surfaced).
        self_labels=labels_from_json(row.get("self_labels", [])),
        operator_labels=labels_from_json(row.get("operator_labels", [])),
        moderation_override=_field(row, "moderation_override", optional_text),
        publish_state=_field(row, "publish_state", optional_text),
        # any gate's shape: a JSON null here is SQL NULL, as catalog.json loads it
        gated=row.get("support_gate") is not None,
    )


def _playlist_from_json(
    row: Mapping[str, Any], *, default_time: datetime
) -> tuple[PlaylistRow, int]:
    is_private = bool(_field(row, "is_private", bool)) if "is_private" in row else False
    items: tuple[str, ...] | None = None
    rejected = 0
    if is_private:
        items, rejected = playlist_items_from_json(row.get("items_json"))
        if rejected:
            logger.warning("playlist %s: %d malformed items_json entries", row.get("id"), rejected)
    updated_at = _field(row, "updated_at", (str, type(None)))
    return (
        PlaylistRow(
            playlist_id=_field(row, "id", str),
            owner_did=_field(row, "owner_did", str),
            record_uri=_field(row, "atproto_record_uri", (str, type(None))),
            record_cid=_field(row, "atproto_record_cid", (str, type(None))),
            is_private=is_private,
            updated_at=_parse_time(updated_at) if updated_at is not None else default_time,
            items=items,
        ),
        rejected,
    )


def _parse_time(value: str) -> datetime:
    # as timestamptz through asyncpg: a naive time is UTC, and what comes back is
    # in UTC, so a private playlist's cache token (updated_at in ISO form) is the
    # same string from either adapter.
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
