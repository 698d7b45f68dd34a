"""the demo session's data: its steps, the catalogue edits they imply, the final states.

kept apart from the generator (`worker.demo.session`) so the replayer and the
tests can read a session without knowing how it was made.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from engine.memory_catalog import InMemoryCatalog
from engine.types import PlaylistRow, Strategy


class StepKind(StrEnum):
    """what one frame of the session is, for the live view and the tests."""

    CREATE = "create"
    UPDATE = "update"  # additions, removals, reorders, renames, bursts
    DELETE = "delete"
    REPLAY = "replay"  # a commit delivered again (same rev, same cid): costs nothing
    IGNORED_LIST = "ignored_list"  # an album or a liked list: never recommended
    OTHER_COLLECTION = "other_collection"
    IDENTITY = "identity"
    ACCOUNT = "account"
    MALFORMED = "malformed"


@dataclass(frozen=True, slots=True)
class CatalogueEdit:
    """what plyr.fm's own ingest does to its `playlists` table on seeing a frame."""

    upsert: PlaylistRow | None = None
    remove_playlist_id: str | None = None

    def apply(self, catalog: InMemoryCatalog) -> None:
        if self.upsert is not None:
            catalog.upsert_playlist(self.upsert)
        if self.remove_playlist_id is not None:
            catalog.remove_playlist(self.remove_playlist_id)


@dataclass(frozen=True, slots=True)
class SessionStep:
    """one frame and what goes with it.

    `time_us` is when to send it (the frame's own `time_us` when it has one; the
    gaps between steps are the session's pacing); `playlist_uri` names the
    playlist a list commit is about; `edit` is None when plyr.fm would not react.
    """

    frame: str
    time_us: int
    kind: StepKind
    note: str
    playlist_uri: str | None = None
    edit: CatalogueEdit | None = None


@dataclass(frozen=True, slots=True)
class ExpectedPlaylist:
    """a playlist's state once every frame has been delivered."""

    playlist_uri: str
    playlist_id: str
    owner_did: str
    name: str
    cid: str | None  # the final record CID: the cache key's token; None once deleted
    track_uris: tuple[str, ...]  # () once deleted
    deleted: bool = False

    @property
    def strategy(self) -> Strategy:
        """the engine branch its final state takes (every demo track has a vector)."""
        count = len(set(self.track_uris))
        if count == 0:
            return Strategy.NONE
        if count == 1:
            return Strategy.DIRECT
        return Strategy.RRF if count <= 5 else Strategy.KMEANS


@dataclass(frozen=True, eq=False)
class DemoSession:
    steps: tuple[SessionStep, ...]
    expected: dict[str, ExpectedPlaylist]  # by playlist URI; listType "playlist" only
    ignored_list_uris: tuple[str, ...]  # the album and the liked list: never cached

    @property
    def frames(self) -> list[str]:
        """the JSON lines, in order (what a replay server sends)."""
        return [step.frame for step in self.steps]

    def __len__(self) -> int:
        return len(self.steps)

    def apply(self, frame_index: int, catalog: InMemoryCatalog) -> None:
        """make `catalog` what plyr.fm's database is once frame `frame_index` is made.

        call it for each frame, in order, just before sending that frame.
        """
        edit = self.steps[frame_index].edit
        if edit is not None:
            edit.apply(catalog)
