"""the quality benchmark's world: a catalogue whose structure is known, and playlists
drawn from it, so an answer can be judged against the truth.

    genres ─┬─ sound regions (5 per genre; siblings under one genre sound alike)
            └─ artists, each with a home region (most of their tracks there, the rest
               in sibling regions), and a faint signature of their own on every track

vectors are made in a low-dimensional latent space and projected to `dim`
dimensions with a little isotropic noise: CLAP embeddings sit on a thin manifold,
and in a latent space of a few dozen dimensions sibling regions overlap at their
edges, as real moods do (in 512 independent dimensions every region would be
trivially separable and every algorithm would look perfect). regions differ in
spread, some tight, some loose.

a share of tracks has no embedding (absent from the store) and a share is not
surfaceable (private, taken down, adult, by a deactivated artist): both still
appear in playlists, as they do on plyr.fm.

a playlist picks 1-3 regions (half the time siblings, the hard case), shares its
tracks between them in one of a few proportions, and from 8 tracks on adds a
few strays from elsewhere. the truth kept with it: its regions and its mix (the
share of its non-stray tracks in each), and the track a leave-one-out run hides.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engine.eligibility import ArtistRecord, TrackRecord
from engine.exact_store import ExactStore
from engine.fusion import largest_remainder
from engine.memory_catalog import InMemoryCatalog

# playlist sizes, cycled so every size meets every region count
SIZES = (1, 2, 3, 4, 5, 6, 8, 12, 16, 24, 32, 48, 64, 100, 150, 250, 500)
MIXES: dict[int, tuple[tuple[float, ...], ...]] = {
    1: ((1.0,),),
    2: ((0.5, 0.5), (0.7, 0.3), (0.85, 0.15)),
    3: ((1 / 3, 1 / 3, 1 / 3), (0.5, 0.3, 0.2), (0.6, 0.25, 0.15)),
}
# a playlist takes at most this share of a region, so the region still has tracks to
# recommend (a 500-track playlist of one region would otherwise empty it)
MAX_REGION_SHARE = 0.6
STRAYS_FROM_SIZE = 8  # smaller playlists have no strays: one stray would be a region
MAX_STRAY_SHARE = 0.1


@dataclass(frozen=True, slots=True)
class WorldShape:
    """how big a world is; `FULL` is the benchmark's, `QUICK` the CI test's."""

    tracks: int
    genres: int
    regions_per_genre: int
    dim: int
    playlists: int  # per seed; a multiple of len(SIZES) * 3 covers every class evenly
    latent_dim: int = 24
    sibling_offset: float = 0.75  # region centre = genre centre + this * a random direction
    artist_signature: float = 0.3
    spread_range: tuple[float, float] = (0.35, 0.6)  # per region, latent noise norm
    ambient_noise: float = 0.25  # isotropic noise in the full space (norm)
    no_embedding_share: float = 0.03
    ineligible_share: float = 0.05
    deactivated_artist_share: float = 0.01
    tracks_per_artist: int = 12  # the mean; the spread is geometric (a few prolific artists)
    home_share: float = 0.8  # of an artist's tracks, in their home region
    # the geometry of real CLAP embeddings (`CLAP_FULL`): every vector leans towards
    # one common direction (all cosine similarities positive, in a narrow band), and
    # some artists release near-duplicates (edits, remasters) of their own tracks
    common_direction: float = 0.0  # weight of the common direction (0: none)
    near_duplicate_share: float = 0.0  # tracks that are a near-copy of another by the artist

    @property
    def regions(self) -> int:
        return self.genres * self.regions_per_genre


FULL = WorldShape(tracks=30_000, genres=12, regions_per_genre=5, dim=512, playlists=102)
QUICK = WorldShape(tracks=3_000, genres=6, regions_per_genre=4, dim=64, playlists=51)
# like CLAP: pairwise cosines ~0.3-0.97 around a common direction, regions of very
# unequal spread, 10 % near-duplicates
CLAP_FULL = dataclasses.replace(
    FULL, common_direction=1.2, spread_range=(0.2, 0.9), near_duplicate_share=0.1
)
CLAP_QUICK = dataclasses.replace(
    QUICK, common_direction=1.2, spread_range=(0.2, 0.9), near_duplicate_share=0.1
)


@dataclass(frozen=True, slots=True)
class Playlist:
    """a generated playlist and the truth about it."""

    track_ids: tuple[int, ...]
    regions: tuple[int, ...]  # its designed regions, largest share first
    mix: tuple[float, ...]  # share of its non-stray tracks in each region
    strays: int
    held_out: int | None  # a recommendable on-region track leave-one-out hides

    @property
    def size(self) -> int:
        return len(self.track_ids)


@dataclass(frozen=True, slots=True)
class World:
    """one seed's catalogue and playlists; track id = row index + 1."""

    seed: int
    shape: WorldShape
    store: ExactStore
    catalog: InMemoryCatalog
    region_of: npt.NDArray[np.intp]
    artist_of: npt.NDArray[np.intp]
    genre_of_region: npt.NDArray[np.intp]
    recommendable: npt.NDArray[np.bool_]  # has an embedding and is surfaceable
    playlists: tuple[Playlist, ...]

    def region(self, track_id: int) -> int:
        return int(self.region_of[track_id - 1])

    def artist(self, track_id: int) -> int:
        return int(self.artist_of[track_id - 1])


def _unit(rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    norms: npt.NDArray[np.float64] = np.linalg.norm(rows, axis=-1, keepdims=True)
    return rows / np.maximum(norms, 1e-12)


def build_world(shape: WorldShape, seed: int) -> World:
    rng = np.random.default_rng(seed)
    latent = shape.latent_dim
    genres = _unit(rng.standard_normal((shape.genres, latent)))
    genre_of_region = np.repeat(np.arange(shape.genres), shape.regions_per_genre)
    centres = _unit(
        genres[genre_of_region]
        + shape.sibling_offset * _unit(rng.standard_normal((shape.regions, latent)))
    )
    spreads = rng.uniform(*shape.spread_range, size=shape.regions)

    # artists: a home region each, track counts geometric around the mean
    counts: list[int] = []
    while sum(counts) < shape.tracks:
        counts.append(int(rng.geometric(1 / shape.tracks_per_artist)))
    counts[-1] -= sum(counts) - shape.tracks
    artists = len(counts)
    home = rng.integers(shape.regions, size=artists)
    signatures = _unit(rng.standard_normal((artists, latent))) * shape.artist_signature
    artist_of = np.repeat(np.arange(artists), counts)
    siblings = rng.integers(shape.regions_per_genre, size=shape.tracks)
    at_home = rng.random(shape.tracks) < shape.home_share
    home_of_track = home[artist_of]
    sibling_region = genre_of_region[home_of_track] * shape.regions_per_genre + siblings
    region_of = np.where(at_home, home_of_track, sibling_region).astype(np.intp)

    noise = _unit(rng.standard_normal((shape.tracks, latent))) * spreads[region_of, None]
    latent_vectors = centres[region_of] + signatures[artist_of] + noise
    projection, _ = np.linalg.qr(rng.standard_normal((shape.dim, latent)))
    ambient = _unit(rng.standard_normal((shape.tracks, shape.dim))) * shape.ambient_noise
    vectors = _unit(latent_vectors @ projection.T + ambient)
    if shape.near_duplicate_share > 0:
        _near_duplicates(vectors, artist_of, region_of, shape.near_duplicate_share, rng)
    if shape.common_direction > 0:
        common = _unit(rng.standard_normal((1, shape.dim)))
        vectors = _unit(shape.common_direction * common + vectors)
    vectors = vectors.astype(np.float32)

    track_ids = np.arange(1, shape.tracks + 1)
    embedded = rng.random(shape.tracks) >= shape.no_embedding_share
    store = ExactStore(track_ids[embedded], vectors[embedded])

    deactivated = rng.random(artists) < shape.deactivated_artist_share
    artist_rows = [
        ArtistRecord(f"did:plc:artist{a}", f"artist{a}.test", f"Artist {a}", deactivated=bool(d))
        for a, d in enumerate(deactivated)
    ]
    hidden = rng.random(shape.tracks) < shape.ineligible_share
    ways = ("private", "takedown", "adult", "pending")
    track_rows = [
        _track_row(int(t), int(artist_of[t - 1]), ways[t % 4] if hidden[t - 1] else None)
        for t in track_ids
    ]
    catalog = InMemoryCatalog(artists=artist_rows, tracks=track_rows)
    recommendable = embedded & ~hidden & ~deactivated[artist_of]

    world = World(
        seed=seed,
        shape=shape,
        store=store,
        catalog=catalog,
        region_of=region_of,
        artist_of=artist_of,
        genre_of_region=genre_of_region.astype(np.intp),
        recommendable=recommendable,
        playlists=(),
    )
    order = np.argsort(region_of, kind="stable")
    bounds = np.searchsorted(region_of[order], np.arange(shape.regions + 1))
    members_of = [
        [int(t) + 1 for t in order[bounds[r] : bounds[r + 1]]] for r in range(shape.regions)
    ]
    playlists = tuple(
        _playlist(world, index, members_of, embedded, random.Random(seed * 100_003 + index))
        for index in range(shape.playlists)
    )
    return dataclasses.replace(world, playlists=playlists)


def _near_duplicates(
    vectors: npt.NDArray[np.float64],
    artist_of: npt.NDArray[np.intp],
    region_of: npt.NDArray[np.intp],
    share: float,
    rng: np.random.Generator,
) -> None:
    """make `share` of the tracks a near-copy of an earlier track by the same artist (in
    place; the copy takes the original's region too: it sounds the same)."""
    tracks = len(vectors)
    for index in np.flatnonzero(rng.random(tracks) < share):
        if index == 0 or artist_of[index - 1] != artist_of[index]:
            continue  # the artist's first track: nothing of theirs to copy yet
        original = index - 1
        jitter = _unit(rng.standard_normal((1, vectors.shape[1])))[0] * 0.05
        vectors[index] = _unit(vectors[original : original + 1] + jitter)[0]
        region_of[index] = region_of[original]


def _track_row(track_id: int, artist: int, hidden_by: str | None) -> TrackRecord:
    row = TrackRecord(id=track_id, title=f"track {track_id}", artist_did=f"did:plc:artist{artist}")
    if hidden_by == "private":
        return dataclasses.replace(row, visibility="private")
    if hidden_by == "takedown":
        return dataclasses.replace(row, moderation_override="takedown")
    if hidden_by == "adult":
        return dataclasses.replace(row, operator_labels=frozenset({"porn"}))
    if hidden_by == "pending":
        return dataclasses.replace(row, publish_state="pending")
    return row


def _playlist(
    world: World,
    index: int,
    members_of: list[list[int]],
    embedded: npt.NDArray[np.bool_],
    rng: random.Random,
) -> Playlist:
    shape = world.shape
    size = SIZES[index % len(SIZES)]
    strays = round(size * rng.uniform(0, MAX_STRAY_SHARE)) if size >= STRAYS_FROM_SIZE else 0
    on_region = size - strays
    region_count = min(1 + (index // len(SIZES)) % 3, on_region)
    mix = rng.choice(MIXES[region_count])
    if region_count > 1 and rng.random() < 0.5:  # siblings under one genre: the hard case
        genre = rng.randrange(shape.genres)
        first = genre * shape.regions_per_genre
        regions = rng.sample(range(first, first + shape.regions_per_genre), region_count)
    else:
        regions = rng.sample(range(shape.regions), region_count)
    # at least one track per region, the rest by largest remainder
    shares = largest_remainder([round(m * 1000) for m in mix], on_region - region_count)
    counts = [1 + share for share in shares]
    chosen: list[int] = []
    taken: list[int] = []
    for region, count in zip(regions, counts, strict=True):
        pool = members_of[region]
        count = min(count, int(len(pool) * MAX_REGION_SHARE))
        chosen.extend(rng.sample(pool, count))
        taken.append(count)
    others = [r for r in range(shape.regions) if r not in regions]
    for _ in range(strays):
        pool = members_of[rng.choice(others)]
        chosen.append(rng.choice([t for t in pool if t not in chosen]))
    if not any(embedded[t - 1] for t in chosen):  # N = 0 answers nothing for anyone
        pool = [t for t in members_of[regions[0]] if embedded[t - 1]]
        chosen[0] = rng.choice(pool)
    on = chosen[: len(chosen) - strays]
    candidates = [t for t in on if world.recommendable[t - 1]] if size >= 2 else []
    held_out = rng.choice(candidates) if candidates else None
    total = sum(taken)
    rng.shuffle(chosen)
    return Playlist(
        track_ids=tuple(chosen),
        regions=tuple(regions),
        mix=tuple(c / total for c in taken),
        strays=strays,
        held_out=held_out,
    )
