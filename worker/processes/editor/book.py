"""what the editor page knows of the demo's world: each playlist's list record as the
demo last wrote it, and the tracks it can name.

the demo is its own users' PDS: every list record it writes goes out as a commit
frame (the session's, or the page's own edits). the book reads those frames
back, so what the page shows is exactly what went out on the firehose, and a
new version starts from the newest record, whoever wrote it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import orjson

from engine.eligibility import ArtistRecord, TrackRecord
from worker.demo.steps import SessionStep
from worker.demo.wire import LIST_COLLECTION


@dataclass(frozen=True, slots=True)
class ListRecord:
    """one playlist's newest list record, and where it lives."""

    playlist_uri: str
    playlist_id: str
    owner_did: str
    rkey: str
    name: str
    created_at: str
    items: tuple[tuple[str, str], ...]  # (track uri, track record cid), in order
    cid: str
    value: Mapping[str, object]  # the record as the commit carried it (the demo PDS serves it)

    @property
    def track_uris(self) -> tuple[str, ...]:
        return tuple(uri for uri, _ in self.items)


@dataclass(frozen=True, slots=True)
class TrackCard:
    """a track as the page shows it (the five fields of an answer's tracks, less the
    image: the page draws a placeholder and fetches nothing)."""

    id: int
    uri: str
    cid: str
    title: str
    artist_handle: str
    artist_display_name: str

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "title": self.title,
            "artist_handle": self.artist_handle,
            "artist_display_name": self.artist_display_name,
        }


class TrackIndex:
    """every track the demo's catalog holds, by id and by record URI."""

    def __init__(self, tracks: Iterable[TrackRecord], artists: Iterable[ArtistRecord]) -> None:
        self._by_id: dict[int, TrackCard] = {}
        self._by_uri: dict[str, TrackCard] = {}
        self.add(tracks, artists)

    def add(self, tracks: Iterable[TrackRecord], artists: Iterable[ArtistRecord]) -> None:
        """index `tracks` (those with a record and a known artist)."""
        by_did = {artist.did: artist for artist in artists}
        for track in tracks:
            artist = by_did.get(track.artist_did)
            if track.record_uri is None or track.record_cid is None or artist is None:
                continue
            card = TrackCard(
                track.id,
                track.record_uri,
                track.record_cid,
                track.title,
                artist.handle,
                artist.display_name,
            )
            self._by_id[card.id] = card
            self._by_uri.setdefault(card.uri, card)

    def by_id(self, track_id: int) -> TrackCard | None:
        return self._by_id.get(track_id)

    def by_uri(self, uri: str) -> TrackCard | None:
        return self._by_uri.get(uri)


class PlaylistBook:
    """the newest list record of each playlist plyr.fm knows, from the frames sent.

    `playlist_ids` names the playlists (record URI -> plyr.fm's playlists.id); a
    frame about any other list (an album, a liked list, a malformed one) is not
    the page's business and is left out.
    """

    def __init__(self, playlist_ids: Mapping[str, str]) -> None:
        self._ids = dict(playlist_ids)
        self._records: dict[str, ListRecord] = {}  # by playlist id, in creation order
        self.last_time_us = 0  # the newest frame's time_us: the stream's clock

    def name(self, playlist_uri: str, playlist_id: str) -> None:
        """a playlist the page itself creates."""
        self._ids[playlist_uri] = playlist_id

    def saw(self, step: SessionStep) -> None:
        """a frame went out: keep its record if it is a playlist's."""
        self.last_time_us = max(self.last_time_us, step.time_us)
        uri = step.playlist_uri
        playlist_id = self._ids.get(uri) if uri is not None else None
        if uri is None or playlist_id is None:
            return
        commit = _commit(step.frame)
        if commit is None:
            return
        if commit.get("operation") == "delete":
            self._records.pop(playlist_id, None)
            return
        record = _list_record(commit, uri, playlist_id)
        if record is not None:
            self._records[playlist_id] = record

    def get(self, playlist_id: str) -> ListRecord | None:
        return self._records.get(playlist_id)

    def records(self) -> list[ListRecord]:
        return list(self._records.values())

    def by_uri(self, playlist_uri: str) -> ListRecord | None:
        playlist_id = self._ids.get(playlist_uri)
        return self._records.get(playlist_id) if playlist_id is not None else None


def _commit(frame: str) -> dict[str, object] | None:
    try:
        event = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return None
    commit = event.get("commit") if isinstance(event, dict) else None
    if not isinstance(commit, dict) or commit.get("collection") != LIST_COLLECTION:
        return None
    return commit


def _list_record(commit: Mapping[str, object], uri: str, playlist_id: str) -> ListRecord | None:
    """the record of a create or update the demo wrote (its own frames: the shapes are
    known; anything else is skipped, never guessed at)."""
    record, cid, rkey = commit.get("record"), commit.get("cid"), commit.get("rkey")
    if not isinstance(record, dict) or not isinstance(cid, str) or not isinstance(rkey, str):
        return None
    items = []
    for item in record.get("items") or ():
        subject = item.get("subject") if isinstance(item, dict) else None
        if isinstance(subject, dict):
            items.append((str(subject.get("uri")), str(subject.get("cid"))))
    owner = uri.removeprefix("at://").split("/", 1)[0]
    return ListRecord(
        playlist_uri=uri,
        playlist_id=playlist_id,
        owner_did=owner,
        rkey=rkey,
        name=str(record.get("name", "")),
        created_at=str(record.get("createdAt", "")),
        items=tuple(items),
        cid=cid,
        value=record,
    )
