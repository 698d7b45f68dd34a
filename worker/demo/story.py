"""the session's renderer: turns a plan of acts into frames, keeping the clock,
the revs, plyr.fm's catalogue edits and the expected final state in step.

each frame gets its own moment (`now_us`, strictly increasing, jittered around
the spacing); a commit's `rev` is the TID of that moment, so revs increase per
repo as they must; a record's CID is the hash of its content, so an identical
record always has the same CID and any edit gives a new one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt

from engine.types import PlaylistRow
from jetstream.syntax import tid
from worker.demo import names, wire
from worker.demo.catalogue import DemoCatalogue
from worker.demo.identifiers import playlist_id
from worker.demo.steps import (
    CatalogueEdit,
    DemoSession,
    ExpectedPlaylist,
    SessionStep,
    StepKind,
)

BURST_DENSITY: Final = 8  # frames of a burst come this many times closer together
IN_MOOD_SHARE: Final = 0.9  # share of a playlist's tracks drawn from its sound regions
# misses (tracks already in the playlist) before a draw gives up on the sound regions
MAX_MISSES: Final = 50


class Op(StrEnum):
    CREATE = "create"
    ADD = "add"
    REMOVE = "remove"
    REORDER = "reorder"
    RENAME = "rename"
    BURST = "burst"  # one track added per frame, frames close together
    DELETE = "delete"


class Act(NamedTuple):
    """one thing a listener does to a playlist; `low..high` tracks (or frames)."""

    op: Op
    low: int = 0
    high: int = 0


# one life story per playlist, cycled; between them every strategy, every kind of
# edit and both kinds of delete appear (the first six are always used).
TEMPLATES: Final = (
    (Act(Op.CREATE, 1), Act(Op.ADD, 2), Act(Op.ADD, 5), Act(Op.REORDER), Act(Op.RENAME)),
    (Act(Op.CREATE, 1), Act(Op.RENAME)),  # one track: direct
    (Act(Op.CREATE, 3), Act(Op.ADD, 1), Act(Op.REORDER)),  # four tracks: RRF
    (Act(Op.CREATE, 4), Act(Op.BURST, 5)),  # rapid additions, debounced: 9 tracks
    (Act(Op.CREATE, 30, 57), Act(Op.REORDER), Act(Op.ADD, 3)),  # big: k-means
    (Act(Op.CREATE, 2), Act(Op.DELETE)),  # short-lived
    (Act(Op.CREATE, 2), Act(Op.RENAME)),
    (Act(Op.CREATE, 14), Act(Op.REMOVE, 9), Act(Op.RENAME)),  # k-means, trimmed to RRF
    (Act(Op.CREATE, 7), Act(Op.ADD, 2), Act(Op.DELETE)),  # deleted after a while
    (Act(Op.CREATE, 10, 20), Act(Op.REORDER), Act(Op.REORDER)),
)


@dataclass(eq=False)
class Planned:
    """a slot of the plan: a playlist's act, or one of the extra frames."""

    playlist: int | None
    act: Act | None = None
    extra: str = ""
    variant: int = 0


@dataclass
class PlaylistState:
    """a playlist as the story knows it so far; uri, rkey and id exist once created."""

    owner: int  # artist index
    name: str
    base_name: str
    pool: npt.NDArray[np.intp]  # track indices of its sound regions
    uri: str = ""
    rkey: str = ""
    playlist_id: str = ""
    created_at: str = ""
    tracks: list[int] = field(default_factory=list)  # track indices, in playlist order
    commits: list[str] = field(default_factory=list)  # its commit frames, oldest first
    renames: int = 0


class Story:
    """renders a plan of acts into frames, keeping the clock, revs and expected state."""

    def __init__(
        self, catalogue: DemoCatalogue, *, seed: int, start_time_us: int, spacing_us: int
    ) -> None:
        self.catalogue = catalogue
        self.seed = seed
        self.rng = np.random.default_rng(np.random.SeedSequence([seed, 0x73657373]))
        self.clock = seed % 1024  # the TID clock id of revs
        self.key_clock = (self.clock + 1) % 1024  # ...and of new record keys
        self.now_us = start_time_us
        self.spacing_us = spacing_us
        self.steps: list[SessionStep] = []
        self.expected: dict[str, ExpectedPlaylist] = {}
        self.ignored: list[str] = []
        self.playlists: list[PlaylistState] = []
        deactivated = np.array([artist.deactivated for artist in catalogue.artists])
        self.active_artists = np.flatnonzero(~deactivated)
        self.deactivated_artists = np.flatnonzero(deactivated)
        self.listeners: list[int] = []

    def cast(self, playlist_count: int) -> None:
        """who owns which playlist, its name and its sound regions.

        about two playlists per listener, so some repos hold several (revs are
        per repo, not per playlist).
        """
        count = min(len(self.active_artists), max(2, (playlist_count + 1) // 2))
        chosen = self.rng.choice(self.active_artists, size=count, replace=False)
        self.listeners = [int(artist) for artist in chosen]
        playlist_names = names.playlist_names(self.rng, playlist_count)
        region_sizes = np.bincount(self.catalogue.regions, minlength=self.catalogue.params.regions)
        weights = region_sizes / region_sizes.sum()  # popular regions get more playlists
        for index, name in enumerate(playlist_names):
            regions = [int(self.rng.choice(len(weights), p=weights))]
            if self.rng.random() < 0.5:  # half the playlists blend two regions
                regions.append(int(self.rng.choice(len(weights), p=weights)))
            pool = np.flatnonzero(np.isin(self.catalogue.regions, regions))
            owner = self.listeners[index % count]
            self.playlists.append(PlaylistState(owner=owner, name=name, base_name=name, pool=pool))

    def session(self) -> DemoSession:
        return DemoSession(tuple(self.steps), dict(self.expected), tuple(self.ignored))

    # --- rendering -----------------------------------------------------------------

    def tick(self, *, burst: bool = False) -> int:
        """move the clock to the next frame's moment and return it."""
        gap = self.spacing_us / (BURST_DENSITY if burst else 1)
        self.now_us += max(1, round(gap * self.rng.uniform(0.5, 1.5)))
        return self.now_us

    def render(self, planned: Planned) -> None:
        """one playlist's act (the frames around the playlists are `worker.demo.extras`'s,
        which renders onto this story: it is called by the session, not from here, so
        the two modules do not import each other)."""
        if planned.playlist is None or planned.act is None:
            raise ValueError("an extra frame is rendered by worker.demo.extras.render_extra")
        self._render_act(self.playlists[planned.playlist], planned.act)

    def _render_act(self, playlist: PlaylistState, act: Act) -> None:
        amount = act.low if act.high <= act.low else int(self.rng.integers(act.low, act.high + 1))
        if act.op is Op.BURST:
            for frame in range(amount):
                self.tick(burst=True)
                playlist.tracks += self._draw(playlist, 1)
                what = f"burst {frame + 1}/{amount}, added a track"
                self._commit(playlist, StepKind.UPDATE, what)
            return
        self.tick()
        if act.op is Op.CREATE:
            did = self.catalogue.artists[playlist.owner].did
            # plyr.fm names a new list record with a TID, a moment before its commit
            playlist.rkey = tid(self.now_us - 1_000, self.key_clock)
            playlist.uri = f"at://{did}/{wire.LIST_COLLECTION}/{playlist.rkey}"
            playlist.playlist_id = playlist_id(self.seed, playlist.uri)
            playlist.created_at = wire.iso_time(self.now_us)
            playlist.tracks = self._draw(playlist, amount)
            self._commit(playlist, StepKind.CREATE, "created")
        elif act.op is Op.ADD:
            playlist.tracks += self._draw(playlist, amount)
            self._commit(playlist, StepKind.UPDATE, f"added {_tracks(amount)}")
        elif act.op is Op.REMOVE:
            dropped = set(self.rng.choice(len(playlist.tracks), amount, replace=False).tolist())
            playlist.tracks = [t for i, t in enumerate(playlist.tracks) if i not in dropped]
            self._commit(playlist, StepKind.UPDATE, f"removed {_tracks(amount)}")
        elif act.op is Op.REORDER:
            order = self.rng.permutation(len(playlist.tracks)).tolist()
            if order == sorted(order):  # a shuffle that changed nothing is no reorder
                order = order[1:] + order[:1]
            playlist.tracks = [playlist.tracks[i] for i in order]
            self._commit(playlist, StepKind.UPDATE, "reordered (same tracks, new CID)")
        elif act.op is Op.RENAME:
            playlist.renames += 1
            playlist.name = f"{playlist.base_name} (v{playlist.renames + 1})"
            self._commit(playlist, StepKind.UPDATE, "renamed (same tracks, new CID)")
        else:
            self._delete(playlist)

    def _draw(self, playlist: PlaylistState, count: int) -> list[int]:
        """`count` tracks not yet in the playlist, mostly from its sound regions."""
        taken = set(playlist.tracks)
        total = len(self.catalogue.track_ids)
        drawn: list[int] = []
        misses = 0
        while len(drawn) < count:
            in_mood = misses < MAX_MISSES and self.rng.random() < IN_MOOD_SHARE
            source_size = len(playlist.pool) if in_mood else total
            index = int(self.rng.integers(source_size))
            track = int(playlist.pool[index]) if in_mood else index
            if track in taken:
                misses += 1  # a small region can run dry: then anywhere will do
                continue
            taken.add(track)
            drawn.append(track)
        return drawn

    def _items(self, tracks: list[int]) -> list[tuple[str, str]]:
        return [(self.catalogue.track_uris[t], self.catalogue.track_cids[t]) for t in tracks]

    def _commit(self, playlist: PlaylistState, kind: StepKind, what: str) -> None:
        created = kind is StepKind.CREATE
        record = wire.list_record(
            name=playlist.name,
            list_type="playlist",
            items=self._items(playlist.tracks),
            created_at=playlist.created_at,
            updated_at=None if created else wire.iso_time(self.now_us),
        )
        owner = self.catalogue.artists[playlist.owner]
        frame, cid = wire.commit_frame(
            did=owner.did,
            time_us=self.now_us,
            rev=tid(self.now_us, self.clock),
            operation=kind.value,
            collection=wire.LIST_COLLECTION,
            rkey=playlist.rkey,
            record=record,
        )
        playlist.commits.append(frame)
        row = PlaylistRow(
            playlist_id=playlist.playlist_id,
            owner_did=owner.did,
            record_uri=playlist.uri,
            record_cid=cid,
            is_private=False,
            updated_at=wire.moment(self.now_us),
            items=None,
        )
        track_uris = tuple(uri for uri, _ in self._items(playlist.tracks))
        self.expected[playlist.uri] = ExpectedPlaylist(
            playlist.uri, playlist.playlist_id, owner.did, playlist.name, cid, track_uris
        )
        note = f'"{playlist.name}" by @{owner.handle}: {what}, {_tracks(len(track_uris))}'
        self.step(frame, kind, note, playlist.uri, CatalogueEdit(upsert=row))

    def _delete(self, playlist: PlaylistState) -> None:
        owner = self.catalogue.artists[playlist.owner]
        frame, _ = wire.commit_frame(
            did=owner.did,
            time_us=self.now_us,
            rev=tid(self.now_us, self.clock),
            operation="delete",
            collection=wire.LIST_COLLECTION,
            rkey=playlist.rkey,
            record=None,
        )
        self.expected[playlist.uri] = ExpectedPlaylist(
            playlist.uri, playlist.playlist_id, owner.did, playlist.name, None, (), deleted=True
        )
        edit = CatalogueEdit(remove_playlist_id=playlist.playlist_id)
        note = f'"{playlist.name}" by @{owner.handle}: deleted'
        self.step(frame, StepKind.DELETE, note, playlist.uri, edit)

    def step(
        self,
        frame: str,
        kind: StepKind,
        note: str,
        playlist_uri: str | None = None,
        edit: CatalogueEdit | None = None,
    ) -> None:
        self.steps.append(SessionStep(frame, self.now_us, kind, note, playlist_uri, edit))


def _tracks(count: int) -> str:
    return f"{count} track" if count == 1 else f"{count} tracks"
