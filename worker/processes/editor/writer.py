"""the page's edits, written the way plyr.fm writes them: a new version of the list
record (a new CID), plyr.fm's own row updated, the commit out on the firehose.

in production plyr.fm's backend writes the record to the owner's PDS and its
`playlists` row (with the new CID) as the user edits; the commit reaches this
service through Jetstream. the demo plays both parts: it upserts the row in its
in-memory catalog (what plyr.fm's ingest does), then appends the commit to its
replay server, where the real consumer reads it. from there the edit takes the
production path: consumer, docket, worker, cache. the row names the demo's PDS
(`pds_url`, served by the page's routes), so an API that computes the new
version before the worker does reads the record there, as it would in production.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Final

from engine.memory_catalog import InMemoryCatalog
from engine.types import MAX_LIST_ITEMS, PlaylistRow
from jetstream.replay import ReplayServer
from jetstream.syntax import tid
from worker.demo import wire
from worker.demo.identifiers import playlist_id as make_playlist_id
from worker.demo.steps import CatalogueEdit, SessionStep, StepKind
from worker.processes.editor.book import ListRecord, PlaylistBook, TrackCard, TrackIndex

# the TID clock id of the page's revs and record keys (the session uses seed % 1024;
# a distinct one keeps a rev of the page's from ever equalling one of the session's)
PAGE_CLOCK_ID: Final = 1021


class EditRefused(Exception):
    """an edit the page asked for that the demo will not write (status: HTTP status)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class DemoWriter:
    """writes new versions of the demo's list records; `announce` is told of each frame
    (the live view, which keeps the book in step: every frame the demo sends, the
    session's and these, passes through it)."""

    def __init__(
        self,
        *,
        book: PlaylistBook,
        tracks: TrackIndex,
        catalog: InMemoryCatalog,
        replay: ReplayServer,
        announce: Callable[[SessionStep], None],
        seed: int,
        pds_url: str | None = None,
    ) -> None:
        self.book = book
        self.tracks = tracks
        self.catalog = catalog
        self.replay = replay
        self.announce = announce
        self.seed = seed
        self.pds_url = pds_url  # where the records are served (the API's inline computes)
        self.written = 0  # frames this writer sent

    def add_track(self, playlist_id: str, track_id: int) -> ListRecord:
        """append a track to a playlist: the record's next version, sent."""
        record = self.book.get(playlist_id)
        if record is None:
            raise EditRefused(404, "unknown playlist")
        track = self.tracks.by_id(track_id)
        if track is None:
            raise EditRefused(422, "unknown track")
        if track.uri in record.track_uris:
            raise EditRefused(409, "the track is in the playlist already")
        if len(record.items) >= MAX_LIST_ITEMS:
            raise EditRefused(409, f"a playlist holds at most {MAX_LIST_ITEMS} tracks")
        items = (*record.items, (track.uri, track.cid))
        note = f'"{record.name}" (the page): added "{track.title}", {len(items)} tracks'
        return self._write(record, items, StepKind.UPDATE, note, self._now_us())

    def create_playlist(
        self, *, owner_did: str, name: str, tracks: Sequence[TrackCard], time_us: int
    ) -> ListRecord:
        """a new playlist holding `tracks`, created at `time_us`."""
        rkey = tid(time_us - 1_000, PAGE_CLOCK_ID)  # named a moment before its commit
        uri = f"at://{owner_did}/{wire.LIST_COLLECTION}/{rkey}"
        playlist_id = make_playlist_id(self.seed, uri)
        self.book.name(uri, playlist_id)
        record = ListRecord(
            playlist_uri=uri,
            playlist_id=playlist_id,
            owner_did=owner_did,
            rkey=rkey,
            name=name,
            created_at=wire.iso_time(time_us),
            items=(),
            cid="",
            value={},
        )
        items = tuple((track.uri, track.cid) for track in tracks)
        note = f'"{name}" (the page): created, {len(items)} tracks'
        return self._write(record, items, StepKind.CREATE, note, time_us)

    def _now_us(self) -> int:
        # the firehose's clock only moves forward, and a repo's revs only grow
        return max(time.time_ns() // 1000, self.book.last_time_us + 1)

    def _write(
        self,
        record: ListRecord,
        items: tuple[tuple[str, str], ...],
        kind: StepKind,
        note: str,
        time_us: int,
    ) -> ListRecord:
        created = kind is StepKind.CREATE
        value = wire.list_record(
            name=record.name,
            list_type="playlist",
            items=items,
            created_at=record.created_at,
            updated_at=None if created else wire.iso_time(time_us),
        )
        frame, cid = wire.commit_frame(
            did=record.owner_did,
            time_us=time_us,
            rev=tid(time_us, PAGE_CLOCK_ID),
            operation=kind.value,
            collection=wire.LIST_COLLECTION,
            rkey=record.rkey,
            record=value,
        )
        assert cid is not None  # a create or an update carries its record's CID
        row = PlaylistRow(
            playlist_id=record.playlist_id,
            owner_did=record.owner_did,
            record_uri=record.playlist_uri,
            record_cid=cid,
            is_private=False,
            updated_at=wire.moment(time_us),
            items=None,
            owner_pds_url=self.pds_url,
        )
        edit = CatalogueEdit(upsert=row)
        step = SessionStep(frame, time_us, kind, note, record.playlist_uri, edit)
        # plyr.fm's row first, as its backend writes it while the user edits; the
        # firehose carries the commit after
        edit.apply(self.catalog)
        self.replay.append([frame])
        self.written += 1
        self.announce(step)
        written = self.book.get(record.playlist_id)
        if written is None or written.cid != cid:
            raise RuntimeError("the live view did not pass the page's frame to the book")
        return written
