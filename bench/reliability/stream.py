"""a synthetic firehose for the reliability scenarios, and what it must leave behind.

`generate_stream` writes Jetstream v1 frames for many playlists living through
creates, additions, removals, reorders, renames, bursts of rapid edits, deletes
and re-creations under the same record key, interleaved at random, with a few
events the consumer must ignore (albums, identity events). it remembers every
version it wrote, so a cache entry can be judged on its own: the key names a
(playlist, CID), the CID names a version, the version names its tracks.

(`reliability_delivery` turns it into faulty deliveries of the same events.)

the worker's world is static: plyr.fm's `playlists` rows are written once, at
their final CID (`playlist_rows`), as if plyr.fm's own ingest had finished.
deleted playlists keep their row (plyr.fm's ingest lags), so their forget
really has something to delete.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jetstream.syntax import tid
from worker.demo import DemoCatalogue
from worker.demo.identifiers import playlist_id
from worker.demo.wire import LIST_COLLECTION, commit_frame, identity_frame, iso_time, list_record

# shares of the edits after a create (the rest are additions)
REMOVE_SHARE = 0.15
REORDER_SHARE = 0.15
RENAME_SHARE = 0.12
BURST_SHARE = 0.08  # three additions in three consecutive frames
DELETE_SHARE = 0.08  # of playlists: deleted for good at the end of their life
RECREATE_SHARE = 0.04  # of playlists: deleted mid-life and created again under the same rkey
NOISE_SHARE = 0.03  # of frames: identity events and album commits, never recommended
LIFE_SPAN = (0.15, 0.6)  # share of the stream one playlist's life covers
MAX_START_TRACKS = 40
MAX_TRACKS = 120


@dataclass(frozen=True, slots=True)
class Version:
    """one list record a playlist held: its CID, its rev, its tracks."""

    cid: str
    rev: str
    track_uris: tuple[str, ...]


@dataclass
class PlaylistLife:
    """a playlist across the stream; `deleted` is its final state."""

    uri: str
    playlist_id: str
    owner_did: str
    name: str
    versions: dict[str, Version] = field(default_factory=dict)  # by CID, in order written
    final: Version | None = None  # None once deleted
    deleted: bool = False


@dataclass(frozen=True)
class SyntheticStream:
    frames: tuple[bytes, ...]
    playlists: dict[str, PlaylistLife]  # by playlist URI
    time_us: tuple[int, ...]  # each frame's stamp, non-decreasing
    extra_frames: int = 0  # frames a transform added (the injected faults)

    @property
    def last_time_us(self) -> int:
        return self.time_us[-1]

    def live(self) -> list[PlaylistLife]:
        return [life for life in self.playlists.values() if not life.deleted]

    def by_id(self) -> dict[str, PlaylistLife]:
        return {life.playlist_id: life for life in self.playlists.values()}

    def playlist_rows(self) -> list[dict[str, Any]]:
        """plyr.fm's `playlists` rows once its ingest caught up (catalog.json shape)."""
        rows = []
        for life in self.playlists.values():
            last = list(life.versions.values())[-1]
            final = life.final or last
            rows.append(
                {
                    "id": life.playlist_id,
                    "owner_did": life.owner_did,
                    "name": life.name,
                    "atproto_record_uri": life.uri,
                    "atproto_record_cid": final.cid,
                    "track_count": len(final.track_uris),
                }
            )
        return rows


@dataclass
class _Writer:
    catalogue: DemoCatalogue
    rng: np.random.Generator
    seed: int
    now_us: int
    spacing_us: int
    frames: list[bytes] = field(default_factory=list)
    stamps: list[int] = field(default_factory=list)

    def tick(self) -> int:
        self.now_us += self.spacing_us
        return self.now_us

    def emit(self, frame: str | bytes) -> None:
        self.frames.append(frame.encode() if isinstance(frame, str) else frame)
        self.stamps.append(self.now_us)


@dataclass
class _Living:
    """a playlist being written: its current tracks, its pool, its remaining acts."""

    life: PlaylistLife
    rkey: str
    pool: np.ndarray[Any, np.dtype[np.intp]]
    acts: list[str]
    tracks: list[int] = field(default_factory=list)
    created_at: str = ""
    renames: int = 0


def generate_stream(
    catalogue: DemoCatalogue,
    *,
    playlists: int,
    frames: int,
    seed: int = 0,
    start_time_us: int,
    spacing_us: int = 1_000,
) -> SyntheticStream:
    """about `frames` frames for `playlists` playlists, everything drawn from `seed`."""
    if playlists < 1 or frames < 2 * playlists:
        raise ValueError("need at least two frames per playlist")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x72656C69]))
    writer = _Writer(catalogue, rng, seed, start_time_us, spacing_us)
    owners = _owners(catalogue, rng, playlists)
    edits_each = max(1, round(frames * (1 - NOISE_SHARE) / playlists) - 1)
    living = [_cast(writer, index, owners[index], edits_each) for index in range(playlists)]
    noise = round(frames * NOISE_SHARE)
    # each playlist lives through a stretch of the stream (some end early, some start
    # late), its acts spread over it in order; noise falls anywhere
    moments: list[tuple[float, int | None]] = [(float(rng.random()), None) for _ in range(noise)]
    for index, alive in enumerate(living):
        length = rng.uniform(LIFE_SPAN[0], LIFE_SPAN[1])
        start = rng.uniform(0.0, 1.0 - length)
        spread = np.sort(rng.uniform(start, start + length, size=len(alive.acts)))
        moments += [(float(moment), index) for moment in spread]
    moments.sort(key=lambda pair: pair[0])
    slots = [slot for _, slot in moments]
    for slot in slots:
        if slot is None:
            _noise(writer)
        else:
            _act(writer, living[slot])
    lives = {alive.life.uri: alive.life for alive in living}
    return SyntheticStream(tuple(writer.frames), lives, tuple(writer.stamps))


def _owners(catalogue: DemoCatalogue, rng: np.random.Generator, playlists: int) -> list[str]:
    """about two playlists per owner, so a repo's revs span several playlists."""
    active = [artist.did for artist in catalogue.artists if not artist.deactivated]
    count = min(len(active), max(1, (playlists + 1) // 2))
    chosen = [active[int(i)] for i in rng.choice(len(active), size=count, replace=False)]
    return [chosen[i % count] for i in range(playlists)]


def _cast(writer: _Writer, index: int, owner: str, edits: int) -> _Living:
    rng = writer.rng
    regions = rng.choice(writer.catalogue.params.regions, size=2, replace=False)
    pool = np.flatnonzero(np.isin(writer.catalogue.regions, regions))
    rkey = tid(writer.now_us + index, 1)  # record keys are TIDs of their own clock
    uri = f"at://{owner}/{LIST_COLLECTION}/{rkey}"
    life = PlaylistLife(uri, playlist_id(writer.seed, uri), owner, f"mix {index}")
    acts = ["create"]
    for _ in range(edits):
        draw = rng.random()
        if draw < REMOVE_SHARE:
            acts.append("remove")
        elif draw < REMOVE_SHARE + REORDER_SHARE:
            acts.append("reorder")
        elif draw < REMOVE_SHARE + REORDER_SHARE + RENAME_SHARE:
            acts.append("rename")
        elif draw < REMOVE_SHARE + REORDER_SHARE + RENAME_SHARE + BURST_SHARE:
            acts.append("burst")
        else:
            acts.append("add")
    fate = rng.random()
    if fate < DELETE_SHARE:
        acts[-1] = "delete"
    elif fate < DELETE_SHARE + RECREATE_SHARE and len(acts) > 3:
        middle = len(acts) // 2
        acts[middle : middle + 2] = ["delete", "create"]
    return _Living(life, rkey, pool, acts)


def _act(writer: _Writer, alive: _Living) -> None:
    act = alive.acts.pop(0)
    rng = writer.rng
    if act == "create":
        alive.created_at = iso_time(writer.now_us + writer.spacing_us)
        alive.tracks = _draw(writer, alive, int(_start_size(rng)))
    elif act == "add":
        alive.tracks += _draw(writer, alive, int(rng.integers(1, 4)))
    elif act == "burst":
        for _ in range(2):
            alive.tracks += _draw(writer, alive, 1)
            _commit(writer, alive)
        alive.tracks += _draw(writer, alive, 1)
    elif act == "remove" and len(alive.tracks) > 1:
        count = int(rng.integers(1, min(3, len(alive.tracks))))
        drop = set(rng.choice(len(alive.tracks), size=count, replace=False).tolist())
        alive.tracks = [t for i, t in enumerate(alive.tracks) if i not in drop]
    elif act == "reorder" and len(alive.tracks) > 1:
        alive.tracks = alive.tracks[1:] + alive.tracks[:1]
    elif act == "delete":
        _delete(writer, alive)
        return
    else:  # a rename, or an edit a one-track playlist cannot take
        alive.renames += 1
        alive.life.name = f"mix {alive.life.uri[-6:]} v{alive.renames}"
    _commit(writer, alive)


def _start_size(rng: np.random.Generator) -> int:
    draw = rng.random()
    if draw < 0.1:
        return 1  # the direct strategy
    if draw < 0.4:
        return int(rng.integers(2, 6))  # RRF
    return int(rng.integers(6, MAX_START_TRACKS + 1))  # k-means


def _draw(writer: _Writer, alive: _Living, count: int) -> list[int]:
    """up to `count` tracks of the playlist's regions not yet in it."""
    room = MAX_TRACKS - len(alive.tracks)
    taken = set(alive.tracks)
    free = [int(t) for t in alive.pool if int(t) not in taken]
    if room <= 0 or not free:
        return []
    picked = writer.rng.choice(len(free), size=min(count, room, len(free)), replace=False)
    return [free[int(i)] for i in picked]


def _commit(writer: _Writer, alive: _Living) -> None:
    time_us = writer.tick()
    catalogue = writer.catalogue
    items = [(catalogue.track_uris[t], catalogue.track_cids[t]) for t in alive.tracks]
    record = list_record(
        name=alive.life.name,
        list_type="playlist",
        items=items,
        created_at=alive.created_at,
        updated_at=iso_time(time_us),
    )
    rev = tid(time_us, 0)
    operation = "create" if not alive.life.versions or alive.life.deleted else "update"
    frame, cid = commit_frame(
        did=alive.life.owner_did,
        time_us=time_us,
        rev=rev,
        operation=operation,
        collection=LIST_COLLECTION,
        rkey=alive.rkey,
        record=record,
    )
    assert cid is not None
    version = Version(cid, rev, tuple(uri for uri, _ in items))
    alive.life.versions[cid] = version
    alive.life.final = version
    alive.life.deleted = False
    writer.emit(frame)


def _delete(writer: _Writer, alive: _Living) -> None:
    time_us = writer.tick()
    frame, _ = commit_frame(
        did=alive.life.owner_did,
        time_us=time_us,
        rev=tid(time_us, 0),
        operation="delete",
        collection=LIST_COLLECTION,
        rkey=alive.rkey,
        record=None,
    )
    alive.life.final = None
    alive.life.deleted = True
    alive.tracks = []
    writer.emit(frame)


def _noise(writer: _Writer) -> None:
    """an identity event, or an album (a list plyr.fm never recommends for)."""
    time_us = writer.tick()
    artists = writer.catalogue.artists
    artist = artists[int(writer.rng.integers(len(artists)))]
    if writer.rng.random() < 0.5:
        writer.emit(identity_frame(did=artist.did, handle=artist.handle, time_us=time_us, seq=1))
        return
    record = list_record(
        name="an album",
        list_type="album",
        items=[(writer.catalogue.track_uris[0], writer.catalogue.track_cids[0])],
        created_at=iso_time(time_us),
    )
    frame, _ = commit_frame(
        did=artist.did,
        time_us=time_us,
        rev=tid(time_us, 0),
        operation="create",
        collection=LIST_COLLECTION,
        rkey=tid(time_us, 2),
        record=record,
    )
    writer.emit(frame)
