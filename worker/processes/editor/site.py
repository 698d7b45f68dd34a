"""the editor page's side of the demo: what its endpoints answer, without the HTTP.

the page plays plyr.fm's frontend and the site plays plyr.fm's backend: it
lists the playlists, writes an edit as a new list record version
(`DemoWriter`), and asks the API for recommendations exactly as plyr.fm's
backend does, over HTTP with the internal token and the owner's DID. the token
never reaches the browser. each answer is reported with the API's
`x-recommendations-source` and the time the request took, and counted by
source: the page's tally of cache hits and inline computes.

"more" asks the same answer further on (`offset` 3, 6 ...): the API's cache entry
keeps 30 tracks, and its `offset` goes to `MAX_OFFSET`. each ask takes one track
beyond the three it shows, so the page knows whether a next "more" has anything
to show without asking for nothing.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, Final

import httpx

from engine.cache import cache_key
from engine.memory_catalog import InMemoryCatalog
from worker.api.answers import CACHE_FAULTS
from worker.api.app import MAX_OFFSET, SOURCE_HEADER
from worker.demo import DemoCatalogue, DemoSession
from worker.demo.uploads import fresh_uploads
from worker.processes.editor.book import ListRecord, PlaylistBook
from worker.processes.editor.events import EditorView, EventHub
from worker.processes.editor.writer import DemoWriter, EditRefused
from worker.recs.services import Services

RECOMMENDATIONS_LIMIT: Final = 3  # what plyr.fm's frontend asks for
API_TIMEOUT_SECONDS: Final = 15.0  # above the API's own inline-compute budget (10 s)
UPLOADS_PLAYLIST: Final = "fresh uploads (no embeddings yet)"


class EditorSite:
    """the state and answers behind the page (see `worker.processes.editor.routes`)."""

    def __init__(
        self,
        *,
        demo: DemoCatalogue,
        catalog: InMemoryCatalog,
        session: DemoSession,
        view: EditorView,
        writer: DemoWriter,
        services: Services,
        api_url: str,
        token: str,
    ) -> None:
        self.demo = demo
        self.catalog = catalog
        self.session = session
        self.view = view
        self.writer = writer
        self.services = services
        self.token = token
        self.client = httpx.AsyncClient(base_url=api_url, timeout=API_TIMEOUT_SECONDS)
        self.artists = {artist.did: artist for artist in demo.artists}
        self.answers: Counter[str] = Counter()  # answers the page got, by source
        self.refused: dict[str, int] = {}  # requests refused, by reason (guard and edits)
        self.uploads_playlist_id: str | None = None

    @property
    def book(self) -> PlaylistBook:
        return self.view.book

    @property
    def hub(self) -> EventHub:
        return self.view.hub

    async def aclose(self) -> None:
        self.hub.close()
        await self.client.aclose()

    # --- before the session -----------------------------------------------------------

    def add_fresh_uploads(self) -> None:
        """a playlist of tracks without embeddings (`worker.demo.uploads`), created just
        before the session's first frame, so the firehose's clock only moves forward."""
        first = self.session.steps[0].time_us if self.session.steps else time.time_ns() // 1000
        uploads = fresh_uploads(self.demo, time_us=first - 2_000)
        for track in uploads:
            self.catalog.add_track(track)  # as plyr.fm's ingest of the uploads did
        self.writer.tracks.add(uploads, self.demo.artists)
        cards = [card for track in uploads if (card := self.writer.tracks.by_id(track.id))]
        owner = next(iter(self.session.expected.values())).owner_did
        created = self.writer.create_playlist(
            owner_did=owner, name=UPLOADS_PLAYLIST, tracks=cards, time_us=first - 1_000
        )
        self.uploads_playlist_id = created.playlist_id

    # --- what the page reads -------------------------------------------------------------

    @property
    def session_sent(self) -> int:
        return self.view.tally.frames_sent - self.writer.written

    @property
    def session_done(self) -> bool:
        return self.session_sent >= len(self.session)

    def status(self) -> dict[str, object]:
        return {
            "session": {
                "frames": len(self.session),
                "sent": min(self.session_sent, len(self.session)),
                "done": self.session_done,
            },
            "page_frames": self.writer.written,
            "answers": dict(self.answers),
            "streams": self.hub.streams,
            "events_lost": self.hub.lost,
            "refused": dict(self.refused),
        }

    async def playlists(self) -> list[dict[str, object]]:
        """the playlists plyr.fm knows now (its row exists), in creation order."""
        listed = []
        for record in self.book.records():
            if await self.catalog.get_playlist(record.playlist_id) is None:
                continue
            listed.append(
                {
                    "id": record.playlist_id,
                    "name": record.name,
                    "owner_handle": self._handle(record.owner_did),
                    "track_count": len(record.items),
                    "cid": record.cid,
                    "no_embeddings": record.playlist_id == self.uploads_playlist_id,
                }
            )
        return listed

    async def playlist(self, playlist_id: str) -> dict[str, object]:
        record = await self._record(playlist_id)
        tracks = []
        for uri in record.track_uris:
            card = self.writer.tracks.by_uri(uri)
            tracks.append(card.as_json() if card else {"id": None, "title": "unknown track"})
        return {
            "id": record.playlist_id,
            "name": record.name,
            "owner_handle": self._handle(record.owner_did),
            "owner_name": self._display_name(record.owner_did),
            "tracks": tracks,
            "cid": record.cid,
            "pipeline": await self._pipeline(record),
            "editable": self.session_done,
        }

    async def recommendations(self, playlist_id: str, offset: int = 0) -> dict[str, object]:
        """the API's answer for the playlist, asked as plyr.fm's backend asks, from the
        `offset`-th track on; `more` says whether tracks follow those shown."""
        if not 0 <= offset <= MAX_OFFSET:
            raise EditRefused(422, f"offset must be an integer from 0 to {MAX_OFFSET}")
        record = await self._record(playlist_id)
        row = await self.catalog.get_playlist(playlist_id)
        headers = {"X-Internal-Token": self.token, "X-Viewer-Did": record.owner_did}
        started = time.perf_counter()
        try:
            response = await self.client.get(
                f"/playlists/{playlist_id}/recommendations",
                # one beyond those shown: whether there is more (see the module docstring)
                params={"limit": RECOMMENDATIONS_LIMIT + 1, "offset": offset},
                headers=headers,
            )
        except httpx.HTTPError as error:
            self.answers["unreachable"] += 1
            raise EditRefused(502, f"the API did not answer: {type(error).__name__}") from error
        elapsed_ms = (time.perf_counter() - started) * 1e3
        source = response.headers.get(SOURCE_HEADER, f"status {response.status_code}")
        self.answers[source] += 1
        try:
            body: Any = response.json() if response.status_code == 200 else {}
        except ValueError as error:
            raise EditRefused(502, "the API answered something that is not JSON") from error
        answered = body.get("tracks") if isinstance(body, dict) else None
        tracks = [track_for_page(track) for track in answered or () if isinstance(track, dict)]
        return {
            "status": response.status_code,
            "available": bool(isinstance(body, dict) and body.get("available") is True),
            "tracks": tracks[:RECOMMENDATIONS_LIMIT],
            "offset": offset,
            "more": len(tracks) > RECOMMENDATIONS_LIMIT and next_offset(offset) <= MAX_OFFSET,
            "source": source,
            "ms": round(elapsed_ms, 1),
            "cid": row.record_cid if row is not None else None,
        }

    def get_record(self, repo: str, collection: str, rkey: str) -> dict[str, object]:
        """the demo PDS's `com.atproto.repo.getRecord`: a list record the demo wrote."""
        uri = f"at://{repo}/{collection}/{rkey}"
        record = self.book.by_uri(uri)
        if record is None:
            raise EditRefused(400, "RecordNotFound")
        return {"uri": uri, "cid": record.cid, "value": record.value}

    # --- what the page writes ---------------------------------------------------------------

    def add_track(self, playlist_id: str, track_id: int) -> dict[str, object]:
        if not self.session_done:
            raise EditRefused(409, "the demo session is still replaying; edits open after it")
        record = self.writer.add_track(playlist_id, track_id)
        card = self.writer.tracks.by_id(track_id)
        return {"cid": record.cid, "track": card.as_json() if card else None}

    # --- helpers ----------------------------------------------------------------------------

    async def _record(self, playlist_id: str) -> ListRecord:
        record = self.book.get(playlist_id)
        if record is None or await self.catalog.get_playlist(playlist_id) is None:
            raise EditRefused(404, "unknown playlist")
        return record

    async def _pipeline(self, record: ListRecord) -> dict[str, object]:
        """how far the current version has come along the firehose path."""
        handled = self.view.handled.get(record.playlist_uri)
        try:
            cached: bool | None = bool(
                await self.services.redis.exists(cache_key(record.playlist_id, record.cid))
            )
        except CACHE_FAULTS:
            cached = None
        return {
            "queued_cid": self.view.queued.get(record.playlist_uri),
            "worker_cid": handled.cid if handled else None,
            "worker_outcome": handled.outcome if handled else None,
            "cached": cached,
        }

    def _handle(self, did: str) -> str:
        artist = self.artists.get(did)
        return artist.handle if artist else did

    def _display_name(self, did: str) -> str:
        artist = self.artists.get(did)
        return artist.display_name if artist else did


def next_offset(offset: int) -> int:
    """where "more" asks next, after the tracks shown from `offset`."""
    return offset + RECOMMENDATIONS_LIMIT


def track_for_page(track: dict[str, Any]) -> dict[str, object]:
    """an answer's track, with only the fields the page shows (the image is not fetched),
    and `because` (the playlist track that explains it) when the answer carries one."""
    shown: dict[str, object] = {
        "id": track.get("id") if isinstance(track.get("id"), int) else None,
        "title": str(track.get("title", "")),
        "artist_handle": str(track.get("artist_handle", "")),
        "artist_display_name": str(track.get("artist_display_name", "")),
    }
    because = track.get("because")
    if (
        isinstance(because, dict)
        and type(because.get("id")) is int
        and isinstance(because.get("title"), str)
    ):
        shown["because"] = {"id": because["id"], "title": because["title"]}
    return shown
