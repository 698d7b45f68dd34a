"""the embedded demo's catalogue: artists, tracks and clustered vectors, generated.

`plyr-recs run` needs something to recommend from without plyr.fm's database or
turbopuffer. this builds a plausible stand-in: a few hundred artists, tens of
thousands of tracks, and one 512-dim unit vector per track playing the part
of its CLAP embedding.

the vectors are clustered so that recommendations visibly make sense: there
are `regions` "sound regions" (random unit centres, grouped in families so
neighbouring regions are closer than unrelated ones); each artist leans
towards one to three regions and has a faint personal style; each track is
its region's centre times a strength, plus its artist's style, plus gaussian
noise, normalised. a track's nearest neighbours are then mostly from its own
region, a little from its family, and rarely from anywhere else.

generation happens in two steps: `generate_columns` draws plain arrays
(what the disk cache stores, see `catalogue_cache`), `build_catalogue` turns
them into the catalog rows and the vector store. it is all seeded NumPy, so a
seed always gives the same catalogue, and vectorised, so 20,000 x 512 takes a
fraction of a second.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

import numpy as np
import numpy.typing as npt

from engine.eligibility import ArtistRecord, TrackRecord, is_surfaceable
from engine.exact_store import ExactStore
from engine.memory_catalog import InMemoryCatalog
from worker.demo import names
from worker.demo.columns import CatalogueColumns, CatalogueParams
from worker.demo.identifiers import cids_for_digests, did_plc, tids

# (done, total, what): called as generation proceeds, for the live view's progress bar
Progress = Callable[[int, int, str], None]


class TrackCase(IntEnum):
    """how a track stands with the eligibility rules (engine.eligibility)."""

    PUBLISHED = 0  # public, publish_state 'published': surfaceable
    LEGACY = 1  # public, publish_state NULL (rows older than the column): surfaceable
    UNLISTED = 2
    PRIVATE = 3
    PENDING = 4  # upload not finished
    COPYRIGHT = 5  # labelled copyright-violation by the operator
    COPYRIGHT_ALLOWED = 6  # labelled, then reviewed and allowed: surfaceable
    ADULT = 7  # self-labelled 'sexual'
    TAKEDOWN = 8
    SUPPORTERS = 9  # supporters-only: visibility 'supporters', support_gate {"type": "any"}
    COPYRIGHT_GATED = 10  # public, behind a copyright gate (support_gate {"type": "copyright"})


# share of tracks in each case other than PUBLISHED (at least one track each), so
# the demo shows every eligibility rule filtering something
CASE_SHARES: Final = {
    TrackCase.LEGACY: 0.05,
    TrackCase.UNLISTED: 0.02,
    TrackCase.PRIVATE: 0.01,
    TrackCase.PENDING: 0.01,
    TrackCase.COPYRIGHT: 0.005,
    TrackCase.COPYRIGHT_ALLOWED: 0.003,
    TrackCase.ADULT: 0.003,
    TrackCase.TAKEDOWN: 0.002,
    TrackCase.SUPPORTERS: 0.004,
    TrackCase.COPYRIGHT_GATED: 0.003,
}
TRACK_COLLECTION: Final = "fm.plyr.track"
# a reserved example domain (RFC 6761): nothing is ever fetched from it
IMAGE_HOST: Final = "https://images.plyr.example"
# the catalogue's tracks were uploaded over about a year before the demo session
CATALOGUE_START_US: Final = 1_717_200_000_000_000  # 2024-06-01
CATALOGUE_SPAN_US: Final = 365 * 24 * 3600 * 1_000_000
# rows generated per progress report (and per block of vectors)
CHUNK: Final = 4096
# vector recipe: region centre * strength + family pull + artist style + noise (norm ~1)
STRENGTH_RANGE: Final = (0.8, 1.6)
FAMILY_WEIGHT: Final = 0.6  # how much regions of one family share
STYLE_WEIGHT: Final = 0.3  # faint: same-region tracks by others must still be near
REGIONS_PER_FAMILY: Final = 4
DEACTIVATED_ARTIST_SHARE: Final = 0.005
TRACKS_WITHOUT_IMAGE_SHARE: Final = 0.05


@dataclass(frozen=True, slots=True)
class _Standing:
    visibility: str = "public"
    publish_state: str | None = "published"
    self_labels: frozenset[str] = frozenset()
    operator_labels: frozenset[str] = frozenset()
    moderation_override: str | None = None
    gated: bool = False  # support_gate holds a value


_STANDINGS: Final = {
    TrackCase.PUBLISHED: _Standing(),
    TrackCase.LEGACY: _Standing(publish_state=None),
    TrackCase.UNLISTED: _Standing(visibility="unlisted"),
    TrackCase.PRIVATE: _Standing(visibility="private"),
    TrackCase.PENDING: _Standing(publish_state="pending"),
    TrackCase.COPYRIGHT: _Standing(operator_labels=frozenset({"copyright-violation"})),
    TrackCase.COPYRIGHT_ALLOWED: _Standing(
        operator_labels=frozenset({"copyright-violation"}), moderation_override="allow"
    ),
    TrackCase.ADULT: _Standing(self_labels=frozenset({"sexual"})),
    TrackCase.TAKEDOWN: _Standing(moderation_override="takedown"),
    TrackCase.SUPPORTERS: _Standing(visibility="supporters", gated=True),
    TrackCase.COPYRIGHT_GATED: _Standing(gated=True),
}


@dataclass(frozen=True, eq=False)
class DemoCatalogue:
    """the generated catalogue, ready to serve: the catalog, the vector store, and the
    per-track arrays (index i is the i-th track) the session generator draws from."""

    params: CatalogueParams
    catalog: InMemoryCatalog
    store: ExactStore
    artists: tuple[ArtistRecord, ...]
    tracks: tuple[TrackRecord, ...]
    track_ids: npt.NDArray[np.int64]
    regions: npt.NDArray[np.int16]
    track_artists: npt.NDArray[np.int32]  # index into `artists`
    track_uris: tuple[str, ...]
    track_cids: tuple[str, ...]
    surfaceable: npt.NDArray[np.bool_]  # what the eligibility rules say of each track

    @property
    def artist_dids(self) -> tuple[str, ...]:
        return tuple(artist.did for artist in self.artists)


def generate_catalogue(
    *,
    tracks: int = 20_000,
    artists: int = 300,
    regions: int = 24,
    dim: int = 512,
    seed: int = 0,
    progress: Progress | None = None,
) -> DemoCatalogue:
    """a fresh catalogue (no disk cache; see `catalogue_cache.load_or_generate`)."""
    params = CatalogueParams(tracks=tracks, artists=artists, regions=regions, dim=dim, seed=seed)
    return build_catalogue(generate_columns(params, progress=progress), progress=progress)


def generate_columns(
    params: CatalogueParams, *, progress: Progress | None = None
) -> CatalogueColumns:
    """draw every array of the catalogue from the seed.

    independent generators per concern (layout, vectors, names, standing) so
    that, say, a change to the name lists does not move a single vector.
    """
    layout, vector_rng, name_rng, standing_rng = (
        np.random.default_rng(stream)
        for stream in np.random.SeedSequence([params.seed, 0x706C7972]).spawn(4)
    )
    n_tracks, n_artists = params.tracks, params.artists

    artist_dids = np.array([did_plc(params.seed, f"artist {i}") for i in range(n_artists)])
    if len(np.unique(artist_dids)) != n_artists:  # 120 bits of hash: never, but cheap to know
        raise ValueError("artist DIDs collided; pick another seed")
    artist_names = names.artist_names(name_rng, n_artists)
    artist_handles = names.handles(artist_names, name_rng)
    if progress is not None:
        progress(n_artists, n_artists, "artists")

    # who made each track: a long tail, a few prolific artists and many with a handful
    popularity = 1.0 / np.arange(1, n_artists + 1) ** 0.9
    popularity = popularity[layout.permutation(n_artists)]
    track_artists = layout.choice(n_artists, size=n_tracks, p=popularity / popularity.sum())
    track_regions = _track_regions(layout, track_artists, n_artists, params.regions)

    # upload times, strictly increasing with the track id, spread over about a year
    max_gap = max(2, 2 * CATALOGUE_SPAN_US // n_tracks)
    times_us = CATALOGUE_START_US + np.cumsum(layout.integers(1, max_gap, size=n_tracks))
    track_rkeys = tids(times_us.astype(np.int64), clock_id=params.seed % 1024)

    vectors = _vectors(vector_rng, params, track_regions, track_artists, progress)

    track_titles = np.array(names.track_titles(name_rng, n_tracks))
    # a track record's CID hashes what the record says (who, which key, which title)
    digests = b"".join(
        hashlib.sha256(f"{artist_dids[artist]} {rkey} {title}".encode()).digest()
        for artist, rkey, title in zip(
            track_artists.tolist(), track_rkeys.tolist(), track_titles.tolist(), strict=True
        )
    )
    track_cids = cids_for_digests(np.frombuffer(digests, dtype=np.uint8).reshape(n_tracks, 32))
    track_cases, has_image, artist_deactivated = _standings(standing_rng, track_artists, n_artists)

    return CatalogueColumns(
        params=params,
        vectors=vectors,
        track_ids=np.arange(1, n_tracks + 1, dtype=np.int64),
        regions=track_regions.astype(np.int16),
        track_artists=track_artists.astype(np.int32),
        track_rkeys=track_rkeys,
        track_titles=track_titles,
        track_cids=track_cids,
        track_cases=track_cases,
        has_image=has_image,
        artist_dids=artist_dids,
        artist_handles=np.array(artist_handles),
        artist_names=np.array(artist_names),
        artist_deactivated=artist_deactivated,
    )


def _standings(
    rng: np.random.Generator, track_artists: npt.NDArray[np.int64], n_artists: int
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """each track's eligibility case, whether it has cover art, and which artists are
    deactivated (chosen among those with tracks, so it shows in results)."""
    n_tracks = len(track_artists)
    track_cases = np.full(n_tracks, TrackCase.PUBLISHED, dtype=np.int8)
    shuffled = rng.permutation(n_tracks)
    start = 0
    for case, share in CASE_SHARES.items():
        count = max(1, round(share * n_tracks))
        track_cases[shuffled[start : start + count]] = case
        start += count
    has_image = rng.random(n_tracks) >= TRACKS_WITHOUT_IMAGE_SHARE
    deactivated_count = max(1, round(DEACTIVATED_ARTIST_SHARE * n_artists))
    deactivated = rng.choice(np.unique(track_artists), size=deactivated_count, replace=False)
    artist_deactivated = np.zeros(n_artists, dtype=bool)
    artist_deactivated[deactivated] = True
    return track_cases, has_image, artist_deactivated


def _track_regions(
    layout: np.random.Generator,
    track_artists: npt.NDArray[np.int64],
    n_artists: int,
    n_regions: int,
) -> npt.NDArray[np.int64]:
    """each artist leans towards one to three regions (the first most); each track
    lands in one of its artist's regions."""
    artist_regions = layout.integers(n_regions, size=(n_artists, 3))
    leanings = layout.integers(1, 4, size=n_artists)
    weights = layout.random((n_artists, 3))
    weights[:, 0] += 1.5
    weights[np.arange(3)[None, :] >= leanings[:, None]] = 0.0
    cumulative = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    draws = layout.random(len(track_artists))
    choice = np.minimum((draws[:, None] > cumulative[track_artists]).sum(axis=1), 2)
    regions: npt.NDArray[np.int64] = artist_regions[track_artists, choice]
    return regions


def _unit_rows(matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    normalised: npt.NDArray[np.float32] = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    return normalised


def _vectors(
    rng: np.random.Generator,
    params: CatalogueParams,
    track_regions: npt.NDArray[np.int64],
    track_artists: npt.NDArray[np.int64],
    progress: Progress | None,
) -> npt.NDArray[np.float32]:
    dim = params.dim
    families = max(1, params.regions // REGIONS_PER_FAMILY)
    family_centres = _unit_rows(rng.standard_normal((families, dim), dtype=np.float32))
    own = _unit_rows(rng.standard_normal((params.regions, dim), dtype=np.float32))
    family_of_region = np.arange(params.regions) % families
    centres = _unit_rows(family_centres[family_of_region] * FAMILY_WEIGHT + own)
    styles = _unit_rows(rng.standard_normal((params.artists, dim), dtype=np.float32))
    strengths = rng.uniform(*STRENGTH_RANGE, size=params.tracks).astype(np.float32)
    noise_scale = np.float32(1.0 / np.sqrt(dim))

    vectors = np.empty((params.tracks, dim), dtype=np.float32)
    for start in range(0, params.tracks, CHUNK):
        stop = min(start + CHUNK, params.tracks)
        block = vectors[start:stop]  # a view: every step below works in place
        rng.standard_normal(out=block, dtype=np.float32)
        block *= noise_scale
        block += centres[track_regions[start:stop]] * strengths[start:stop, None]
        block += styles[track_artists[start:stop]] * np.float32(STYLE_WEIGHT)
        block /= np.sqrt(np.einsum("ij,ij->i", block, block))[:, None]
        if progress is not None:
            progress(stop, params.tracks, "vectors")
    return vectors


def build_catalogue(
    columns: CatalogueColumns, *, progress: Progress | None = None
) -> DemoCatalogue:
    """the catalog rows and the vector store, from validated columns."""
    artists = tuple(
        ArtistRecord(
            did=did,
            handle=handle,
            display_name=display_name,
            avatar_url=f"{IMAGE_HOST}/avatars/{did.removeprefix('did:plc:')}.webp",
            deactivated=deactivated,
        )
        for did, handle, display_name, deactivated in zip(
            columns.artist_dids.tolist(),
            columns.artist_handles.tolist(),
            columns.artist_names.tolist(),
            columns.artist_deactivated.tolist(),
            strict=True,
        )
    )
    artist_dids = [artist.did for artist in artists]
    track_rows: list[TrackRecord] = []
    track_uris: list[str] = []
    total = columns.params.tracks
    rows = zip(
        columns.track_ids.tolist(),
        columns.track_artists.tolist(),
        columns.track_rkeys.tolist(),
        columns.track_titles.tolist(),
        columns.track_cids.tolist(),
        columns.track_cases.tolist(),
        columns.has_image.tolist(),
        strict=True,
    )
    for track_id, artist, rkey, title, cid, case, has_image in rows:
        did = artist_dids[artist]
        track_uris.append(f"at://{did}/{TRACK_COLLECTION}/{rkey}")
        standing = _STANDINGS[TrackCase(case)]
        track_rows.append(
            TrackRecord(
                id=track_id,
                title=title,
                artist_did=did,
                record_uri=track_uris[-1],
                record_cid=cid,
                image_url=f"{IMAGE_HOST}/tracks/{rkey}.webp" if has_image else None,
                visibility=standing.visibility,
                self_labels=standing.self_labels,
                operator_labels=standing.operator_labels,
                moderation_override=standing.moderation_override,
                publish_state=standing.publish_state,
                gated=standing.gated,
            )
        )
        if progress is not None and (len(track_rows) % CHUNK == 0 or len(track_rows) == total):
            progress(len(track_rows), total, "tracks")
    surfaceable = np.array(
        [
            is_surfaceable(track, artists[a])
            for track, a in zip(track_rows, columns.track_artists.tolist(), strict=True)
        ],
        dtype=bool,
    )
    return DemoCatalogue(
        params=columns.params,
        catalog=InMemoryCatalog(artists=artists, tracks=track_rows),
        store=ExactStore(columns.track_ids, columns.vectors),
        artists=artists,
        tracks=tuple(track_rows),
        track_ids=columns.track_ids,
        regions=columns.regions,
        track_artists=columns.track_artists,
        track_uris=tuple(track_uris),
        track_cids=tuple(columns.track_cids.tolist()),
        surfaceable=surfaceable,
    )
