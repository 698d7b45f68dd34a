"""a generated world for the load benchmarks: plyr.fm's rows, the tracks' vectors, and an
endless Jetstream stream, each a pure function of a few parameters and an index.

why pure functions: the stream server, the turbopuffer-speaking server and the process
that drives the run are separate processes. each rebuilds the same world from the same
parameters instead of being sent it, and frame i can be rebuilt at any moment, so the
stream server keeps nothing it has sent (its memory is flat however long it runs) and a
reconnect resumes from a cursor like a real Jetstream host.

the world: `tracks` public tracks by `artists` artists, their 512-dim vectors clustered
in `regions` sound regions, and `playlists` playlists plyr.fm knows (rows in
PostgreSQL), each drawn mostly from one region. the stream: first one create per known
playlist, with exactly the CID and tracks of its row (the worker's recomputes of these
are the warm cache the API serves), then frames drawn from a `Mix`.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import orjson

from bench.jetstream import other_frame
from bench.samples import bad_frames
from jetstream.replay import DEFAULT_GARBAGE
from worker.demo.wire import cid, did, identity, list_commit, list_delete, tid

DIMENSIONS: Final = 512
# TIDs of the stream's revs: above anything the sample story uses, increasing with i.
REV_BASE: Final = 1 << 40
FIRST_TRACK_ID: Final = 1
# DID numbers of the generated accounts (`worker.demo.wire.did`)
ARTIST_DID_BASE: Final = 1_000
STRANGER_DID_BASE: Final = 5_000_000
PLAYLIST_RKEY_BASE: Final = 10_000_000
MIN_PLAYLIST_TRACKS: Final = 5
MAX_PLAYLIST_TRACKS: Final = 40
REDELIVERY_WINDOW: Final = 5_000  # how far back a redelivered frame may come from


@dataclass(frozen=True)
class WorldSpec:
    """the catalogue: everything in it follows from these numbers."""

    tracks: int = 10_000
    artists: int = 200
    playlists: int = 200
    regions: int = 16
    seed: int = 6

    def artist_did(self, artist: int) -> str:
        return did(ARTIST_DID_BASE + artist)

    def track_uri(self, track_id: int) -> str:
        return f"at://{self.artist_did(track_id % self.artists)}/fm.plyr.track/{tid(track_id)}"

    def region_tracks(self, region: int) -> range:
        return range(FIRST_TRACK_ID + region, FIRST_TRACK_ID + self.tracks, self.regions)

    @cached_property
    def known(self) -> tuple[KnownPlaylist, ...]:
        return tuple(self._playlist(p) for p in range(self.playlists))

    def _playlist(self, p: int) -> KnownPlaylist:
        rng = random.Random(f"{self.seed}:playlist:{p}")
        region = p % self.regions
        in_region = self.region_tracks(region)
        size = min(len(in_region), rng.randint(MIN_PLAYLIST_TRACKS, MAX_PLAYLIST_TRACKS))
        digest = hashlib.sha256(f"{self.seed}:playlist id:{p}".encode()).hexdigest()
        owner = self.artist_did(p % self.artists)
        rkey = tid(PLAYLIST_RKEY_BASE + p)
        return KnownPlaylist(
            index=p,
            playlist_id=f"{digest[:8]}-{digest[8:12]}-4{digest[13:16]}-8{digest[17:20]}-"
            f"{digest[20:32]}",
            owner_did=owner,
            rkey=rkey,
            record_uri=f"at://{owner}/fm.plyr.list/{rkey}",
            first_cid=cid(f"{self.seed}:first:{p}"),
            track_ids=tuple(rng.sample(in_region, size)),
            region=region,
        )

    def vectors(self) -> npt.NDArray[np.float32]:
        """one row per track id (row i is track FIRST_TRACK_ID + i): region * 3 + noise."""
        rng = np.random.default_rng(self.seed)
        centres = rng.standard_normal((self.regions, DIMENSIONS)).astype(np.float32)
        noise = rng.standard_normal((self.tracks, DIMENSIONS)).astype(np.float32)
        ids = np.arange(FIRST_TRACK_ID, FIRST_TRACK_ID + self.tracks)
        vectors: npt.NDArray[np.float32] = centres[ids % self.regions] * 3.0 + noise
        return vectors

    def catalog_rows(self) -> dict[str, list[dict[str, Any]]]:
        """plyr.fm's rows, shaped for `bench.loopback.catalog_rows.load_into_postgres`."""
        artists = [
            {
                "did": self.artist_did(a),
                "handle": f"artist{a}.load.test",
                "display_name": f"artist {a}",
            }
            for a in range(self.artists)
        ]
        tracks = [
            {
                "id": t,
                "title": f"track {t}",
                "artist_did": self.artist_did(t % self.artists),
                "atproto_record_uri": self.track_uri(t),
                "atproto_record_cid": cid(f"track {t}"),
                "image_url": f"https://images.load.test/{t}.webp",
            }
            for t in range(FIRST_TRACK_ID, FIRST_TRACK_ID + self.tracks)
        ]
        updated_at = datetime(2026, 1, 1, tzinfo=UTC).isoformat()
        playlists = [
            {
                "id": known.playlist_id,
                "owner_did": known.owner_did,
                "name": f"playlist {known.index}",
                "atproto_record_uri": known.record_uri,
                "atproto_record_cid": known.first_cid,
                "track_count": len(known.track_ids),
                "updated_at": updated_at,
            }
            for known in self.known
        ]
        return {"artists": artists, "tracks": tracks, "playlists": playlists}


@dataclass(frozen=True)
class KnownPlaylist:
    """a playlist plyr.fm has a row for, as the stream first creates it."""

    index: int
    playlist_id: str
    owner_did: str
    rkey: str
    record_uri: str
    first_cid: str
    track_ids: tuple[int, ...]
    region: int


@dataclass(frozen=True)
class Mix:
    """relative weights of what follows the creates of the known playlists.

    edit: a new version of a known playlist (tracks added, dropped, reordered);
    stranger: a list commit of a playlist plyr.fm has no row for (the worker waits,
    then drops it); delete: a stranger's list deleted; album/liked: list types that
    get no recommendations; other: identity, account and other collections (what a
    host that ignores `wantedCollections` also sends); malformed: the bad-frame
    samples and broken bytes; redelivery: an earlier frame again (duplicate or stale).
    """

    edit: float = 1.0
    stranger: float = 0.0
    delete: float = 0.0
    album: float = 0.0
    liked: float = 0.0
    other: float = 0.0
    malformed: float = 0.0
    redelivery: float = 0.0
    strangers: int = 50_000  # distinct stranger playlists

    def kinds(self) -> list[tuple[str, float]]:
        weights = asdict(self)
        del weights["strangers"]
        total = sum(weights.values())
        if total <= 0:
            raise ValueError("a mix needs a positive weight")
        cumulative, running = [], 0.0
        for kind, weight in weights.items():
            if weight > 0:
                running += weight / total
                cumulative.append((kind, running))
        return cumulative


EDITS_ONLY: Final = Mix()
# a firehose as a blind host would send it: mostly not ours (identity, account and
# other collections), 2 % edits of known playlists (~24/s at 1,200 frames/s, well
# within one worker's pace), a few strangers (each costs the worker a few waits
# for plyr.fm's ingest before it is dropped), malformed frames and redeliveries
FIREHOSE: Final = Mix(
    edit=0.02,
    stranger=0.002,
    delete=0.001,
    album=0.005,
    liked=0.005,
    other=0.767,
    malformed=0.05,
    redelivery=0.15,
)


@dataclass(frozen=True)
class StreamSpec:
    """the stream: the creates of every known playlist, then `Mix` draws, forever (or
    until `frames`). frame i happens at `start_time_us + i * step_us`."""

    world: WorldSpec
    start_time_us: int
    mix: Mix = field(default_factory=Mix)
    step_us: int = 100
    frames: int | None = None

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes | str) -> StreamSpec:
        data = orjson.loads(raw)
        return cls(
            world=WorldSpec(**data["world"]),
            start_time_us=data["start_time_us"],
            mix=Mix(**data["mix"]),
            step_us=data["step_us"],
            frames=data["frames"],
        )

    def time_us(self, index: int) -> int:
        return self.start_time_us + index * self.step_us

    def first_index_at(self, cursor_us: int) -> int:
        """the first frame whose time_us >= `cursor_us` (Jetstream's cursor rule)."""
        return max(0, -(-(cursor_us - self.start_time_us) // self.step_us))

    @cached_property
    def _kinds(self) -> list[tuple[str, float]]:
        return self.mix.kinds()

    @cached_property
    def malformed_samples(self) -> tuple[bytes, ...]:
        return tuple(line.encode() for line in bad_frames()) + DEFAULT_GARBAGE

    def kind(self, index: int) -> str:
        if index < self.world.playlists:
            return "create"
        draw = _rng(self.world.seed, index).random()
        for kind, bound in self._kinds:
            if draw < bound:
                return kind
        return self._kinds[-1][0]

    def frame(self, index: int) -> bytes:
        kind = self.kind(index)
        if kind == "redelivery":
            earlier = index - _rng(self.world.seed, index, "back").randint(1, REDELIVERY_WINDOW)
            if earlier >= 0 and self.kind(earlier) != "redelivery":
                return self.frame(earlier)
            kind = "other"
        return _BUILDERS[kind](self, index)

    def edit(self, index: int) -> Edit | None:
        """the known playlist's version frame `index` carries, if it is a create or edit."""
        kind = self.kind(index)
        world = self.world
        if kind == "create":
            known = world.known[index]
            return Edit(known, known.first_cid, known.track_ids, index)
        if kind != "edit":
            return None
        rng = _rng(world.seed, index, "edit")
        known = world.known[rng.randrange(world.playlists)]
        tracks = list(known.track_ids)
        for _ in range(rng.randint(0, min(3, len(tracks) - 1))):
            tracks.pop(rng.randrange(len(tracks)))
        in_region = world.region_tracks(known.region)
        for _ in range(rng.randint(0, 3)):
            candidate = rng.choice(in_region)
            if candidate not in tracks:
                tracks.insert(rng.randrange(len(tracks) + 1), candidate)
        if rng.random() < 0.1:
            rng.shuffle(tracks)  # a reorder: the same set can reuse an earlier answer
        return Edit(known, cid(f"{world.seed}:edit:{index}"), tuple(tracks), index)


@dataclass(frozen=True)
class Edit:
    playlist: KnownPlaylist
    cid: str
    track_ids: tuple[int, ...]
    index: int


def _rng(seed: int, index: int, purpose: str = "kind") -> random.Random:
    return random.Random(f"{seed}:{purpose}:{index}")


def _list_of_known(stream: StreamSpec, index: int) -> bytes:
    edit = stream.edit(index)
    assert edit is not None
    world = stream.world
    return list_commit(
        owner=edit.playlist.owner_did,
        rkey=edit.playlist.rkey,
        rev=tid(REV_BASE + index),
        record_cid=edit.cid,
        tracks=[world.track_uri(t) for t in edit.track_ids],
        time_us=stream.time_us(index),
        operation="create" if index < world.playlists else "update",
    )


def _stranger_commit(stream: StreamSpec, index: int, list_type: str = "playlist") -> bytes:
    world = stream.world
    rng = _rng(world.seed, index, "stranger")
    stranger = rng.randrange(stream.mix.strangers)
    tracks = [FIRST_TRACK_ID + rng.randrange(world.tracks) for _ in range(rng.randint(1, 12))]
    return list_commit(
        owner=did(STRANGER_DID_BASE + stranger),
        rkey=tid(PLAYLIST_RKEY_BASE + stranger),
        rev=tid(REV_BASE + index),
        record_cid=cid(f"{world.seed}:stranger:{index}"),
        tracks=[world.track_uri(t) for t in tracks],
        time_us=stream.time_us(index),
        list_type=list_type,
    )


def _stranger_delete(stream: StreamSpec, index: int) -> bytes:
    stranger = _rng(stream.world.seed, index, "stranger").randrange(stream.mix.strangers)
    return list_delete(
        owner=did(STRANGER_DID_BASE + stranger),
        rkey=tid(PLAYLIST_RKEY_BASE + stranger),
        rev=tid(REV_BASE + index),
        time_us=stream.time_us(index),
    )


def _other(stream: StreamSpec, index: int) -> bytes:
    if index % 7 == 0:
        owner = did(STRANGER_DID_BASE + index % stream.mix.strangers)
        return identity(owner=owner, time_us=stream.time_us(index))
    return other_frame(index, stream.time_us(index))


def _malformed(stream: StreamSpec, index: int) -> bytes:
    samples = stream.malformed_samples
    return samples[index % len(samples)]


_BUILDERS = {
    "create": _list_of_known,
    "edit": _list_of_known,
    "stranger": _stranger_commit,
    "delete": _stranger_delete,
    "album": lambda stream, index: _stranger_commit(stream, index, "album"),
    "liked": lambda stream, index: _stranger_commit(stream, index, "liked"),
    "other": _other,
    "malformed": _malformed,
}


def latest_versions(stream: StreamSpec, frames: int) -> dict[str, Edit]:
    """playlist_id -> the newest version among the first `frames` frames: what the cache
    must end up holding for each known playlist once the worker has caught up."""
    latest: dict[str, Edit] = {}
    for index in range(frames):
        edit = stream.edit(index)
        if edit is not None:
            latest[edit.playlist.playlist_id] = edit
    return latest


def edits_between(stream: StreamSpec, first: int, end: int) -> Sequence[Edit]:
    """the versions of known playlists carried by frames [first, end)."""
    return [edit for index in range(first, end) if (edit := stream.edit(index)) is not None]
