"""the embedded demo's catalogue and its disk cache.

pure generation, no servers: small catalogues (2,000 tracks) keep the file fast.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from engine.eligibility import TrackRecord, is_surfaceable
from jetstream.syntax import is_cid, is_did, is_tid, record_uri_pattern, tid
from worker.demo import (
    DemoCatalogue,
    TrackCase,
    catalogue_cache,
    default_cache_dir,
    generate_catalogue,
    load_or_generate,
)
from worker.demo.catalogue import generate_columns
from worker.demo.columns import CatalogueColumns, CatalogueParams
from worker.demo.identifiers import cid_for_bytes, cids_for_digests, tids

SMALL = {"tracks": 2_000, "artists": 60, "regions": 8, "dim": 512}
TRACK_URI = record_uri_pattern("fm.plyr.track")


@pytest.fixture(scope="module")
def catalogue() -> DemoCatalogue:
    return generate_catalogue(**SMALL, seed=3)


def _columns_equal(first: CatalogueColumns, second: CatalogueColumns) -> bool:
    return all(
        np.array_equal(first.as_arrays()[name], second.as_arrays()[name])
        for name in first.as_arrays()
    )


# --- the catalogue -----------------------------------------------------------------


async def test_a_seed_gives_the_same_catalogue_and_another_seed_a_different_one() -> None:
    first = generate_catalogue(**SMALL, seed=11)
    again = generate_catalogue(**SMALL, seed=11)
    other = generate_catalogue(**SMALL, seed=12)
    ids = first.track_ids.tolist()
    vectors = await first.store.get_vectors(ids)
    vectors_again = await again.store.get_vectors(ids)
    vectors_other = await other.store.get_vectors(ids)
    assert all(np.array_equal(vectors[i], vectors_again[i]) for i in ids)
    assert first.tracks == again.tracks
    assert first.artists == again.artists
    assert not np.allclose(vectors[ids[0]], vectors_other[ids[0]])
    assert first.artist_dids != other.artist_dids
    assert [t.title for t in first.tracks] != [t.title for t in other.tracks]


def test_columns_are_reproducible_array_for_array() -> None:
    params = CatalogueParams(**SMALL, seed=9)
    assert _columns_equal(generate_columns(params), generate_columns(params))
    assert not _columns_equal(
        generate_columns(params), generate_columns(CatalogueParams(**SMALL, seed=10))
    )


def test_vectorised_identifiers_match_the_scalar_ones() -> None:
    times = np.array([0, 1, 1_768_435_200_123_456, 2**53 - 1], dtype=np.int64)
    assert tids(times, clock_id=17).tolist() == [tid(int(t), 17) for t in times]
    assert tid(1_768_435_200_000_000) < tid(1_768_435_200_000_001)  # sortable as strings
    contents = [b"", b"a", b"playlist"]
    digests = np.frombuffer(b"".join(hashlib.sha256(c).digest() for c in contents), np.uint8)
    assert cids_for_digests(digests.reshape(-1, 32)).tolist() == [
        cid_for_bytes(c) for c in contents
    ]


def test_vectors_are_float32_unit_vectors() -> None:
    columns = generate_columns(CatalogueParams(**SMALL, seed=1))
    assert columns.vectors.dtype == np.float32
    assert columns.vectors.shape == (SMALL["tracks"], SMALL["dim"])
    np.testing.assert_allclose(np.linalg.norm(columns.vectors, axis=1), 1.0, atol=1e-5)


async def test_nearest_neighbours_are_mostly_from_the_same_sound_region(
    catalogue: DemoCatalogue,
) -> None:
    probes = np.random.default_rng(0).choice(len(catalogue.track_ids), 60, replace=False)
    probe_ids = [int(catalogue.track_ids[i]) for i in probes]
    vectors = await catalogue.store.get_vectors(probe_ids)
    results = await catalogue.store.query_many(
        [vectors[i] for i in probe_ids], top_k=10, exclude_ids=probe_ids
    )
    region_of = dict(zip(catalogue.track_ids.tolist(), catalogue.regions.tolist(), strict=True))
    artist_of = dict(
        zip(catalogue.track_ids.tolist(), catalogue.track_artists.tolist(), strict=True)
    )
    # other artists' tracks only: an artist's own tracks are close by their style alone
    same = [
        region_of[candidate.track_id] == region_of[probe]
        for probe, candidates in zip(probe_ids, results, strict=True)
        for candidate in candidates
        if artist_of[candidate.track_id] != artist_of[probe]
    ]
    assert len(same) >= 100
    assert np.mean(same) >= 0.8
    # and the regions are not one blob: the probes span several of them
    assert len({region_of[probe] for probe in probe_ids}) >= 4


async def test_the_catalogue_exercises_every_eligibility_rule(catalogue: DemoCatalogue) -> None:
    by_case = Counter(_case_of(track) for track in catalogue.tracks)
    assert set(by_case) == set(TrackCase), by_case
    assert by_case[TrackCase.PUBLISHED] > 0.85 * len(catalogue.tracks)
    deactivated = {artist.did for artist in catalogue.artists if artist.deactivated}
    assert deactivated
    assert any(track.artist_did in deactivated for track in catalogue.tracks)
    # the surfaceable flags are the rules' own verdict, and the catalog applies them
    artists = {artist.did: artist for artist in catalogue.artists}
    for track, flag in zip(catalogue.tracks, catalogue.surfaceable.tolist(), strict=True):
        assert flag == is_surfaceable(track, artists[track.artist_did])
    hidden = [t.id for t, ok in zip(catalogue.tracks, catalogue.surfaceable, strict=True) if not ok]
    shown = [t.id for t, ok in zip(catalogue.tracks, catalogue.surfaceable, strict=True) if ok]
    assert await catalogue.catalog.hydrate(hidden[:50]) == []
    assert [t.id for t in await catalogue.catalog.hydrate(shown[:50])] == shown[:50]


def _case_of(track: TrackRecord) -> TrackCase:
    labels = (track.self_labels or frozenset()) | (track.operator_labels or frozenset())
    if track.gated:
        supporters = track.visibility == "supporters"
        return TrackCase.SUPPORTERS if supporters else TrackCase.COPYRIGHT_GATED
    if track.visibility == "unlisted":
        return TrackCase.UNLISTED
    if track.visibility == "private":
        return TrackCase.PRIVATE
    if track.publish_state == "pending":
        return TrackCase.PENDING
    if track.moderation_override == "takedown":
        return TrackCase.TAKEDOWN
    if "sexual" in labels:
        return TrackCase.ADULT
    if "copyright-violation" in labels:
        allowed = track.moderation_override == "allow"
        return TrackCase.COPYRIGHT_ALLOWED if allowed else TrackCase.COPYRIGHT
    return TrackCase.LEGACY if track.publish_state is None else TrackCase.PUBLISHED


async def test_rows_look_like_plyr_fm_rows(catalogue: DemoCatalogue) -> None:
    handles = [artist.handle for artist in catalogue.artists]
    assert len(set(handles)) == len(handles)
    for artist in catalogue.artists:
        assert is_did(artist.did)
        assert artist.did.startswith("did:plc:")
        assert re.fullmatch(r"[a-z0-9]+\.(bsky\.social|plyr\.fm)", artist.handle), artist.handle
        assert artist.display_name.strip()
    for track in catalogue.tracks:
        assert track.record_uri is not None
        assert TRACK_URI.fullmatch(track.record_uri)
        assert track.record_uri.startswith(f"at://{track.artist_did}/fm.plyr.track/")
        assert is_tid(track.record_uri.rsplit("/", 1)[1])
        assert track.record_cid is not None
        assert is_cid(track.record_cid)
        assert track.record_cid.startswith("bafyrei")
        assert len(track.record_cid) == 59
        assert track.image_url is None or track.image_url.startswith("https://images.plyr.example/")
    # every track resolves by its URI, as the worker resolves a playlist's items
    uris = list(catalogue.track_uris[:300])
    resolved = await catalogue.catalog.resolve_tracks(uris)
    assert [resolved[uri] for uri in uris] == catalogue.track_ids[:300].tolist()


def test_progress_is_reported_up_to_completion() -> None:
    calls: list[tuple[int, int, str]] = []
    generate_catalogue(**SMALL, seed=2, progress=lambda d, t, w: calls.append((d, t, w)))
    stages = {what for _, _, what in calls}
    assert {"artists", "vectors", "tracks"} <= stages
    for stage in stages:
        done = [d for d, _, what in calls if what == stage]
        total = {t for _, t, what in calls if what == stage}
        assert done == sorted(done)
        assert done[-1] == max(total)
        assert len(total) == 1


# --- the disk cache ----------------------------------------------------------------


@pytest.fixture
def generations(monkeypatch: pytest.MonkeyPatch) -> list[CatalogueParams]:
    """the params of every real generation the cache layer asks for."""
    seen: list[CatalogueParams] = []
    real: Callable[..., CatalogueColumns] = catalogue_cache.generate_columns

    def counting(params: CatalogueParams, **kwargs: object) -> CatalogueColumns:
        seen.append(params)
        return real(params, **kwargs)

    monkeypatch.setattr(catalogue_cache, "generate_columns", counting)
    return seen


def test_the_second_load_reads_the_cache(
    tmp_path: Path, generations: list[CatalogueParams]
) -> None:
    first = load_or_generate(tmp_path, **SMALL, seed=4)
    assert len(generations) == 1
    assert len(list(tmp_path.glob("*.npz"))) == 1
    second = load_or_generate(tmp_path, **SMALL, seed=4)
    assert len(generations) == 1  # read, not generated
    assert second.tracks == first.tracks
    assert second.artists == first.artists
    ids = first.track_ids.tolist()
    vectors = asyncio.run(first.store.get_vectors(ids))
    cached_vectors = asyncio.run(second.store.get_vectors(ids))
    assert all(np.array_equal(vectors[i], cached_vectors[i]) for i in ids)
    # other parameters are another file, not a wrong answer from this one
    load_or_generate(tmp_path, **SMALL, seed=5)
    assert len(generations) == 2
    assert len(list(tmp_path.glob("*.npz"))) == 2


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other_parameters", "nan_vector"])
def test_a_damaged_cache_file_is_regenerated(
    tmp_path: Path,
    generations: list[CatalogueParams],
    caplog: pytest.LogCaptureFixture,
    damage: str,
) -> None:
    params = CatalogueParams(**SMALL, seed=6)
    good = load_or_generate(tmp_path, **SMALL, seed=6)
    path = catalogue_cache.cache_path(tmp_path, params)
    if damage == "garbage":
        path.write_bytes(b"this is not a zip file")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "other_parameters":
        other = generate_columns(CatalogueParams(**SMALL, seed=7))
        catalogue_cache.write_columns(path, other)
    else:
        columns = generate_columns(params)
        columns.vectors[5, :] = np.nan
        catalogue_cache.write_columns(path, columns)
    generations.clear()
    with caplog.at_level(logging.WARNING, logger="worker.demo.catalogue_cache"):
        again = load_or_generate(tmp_path, **SMALL, seed=6)
    assert len(generations) == 1
    assert "unusable" in caplog.text
    assert again.tracks == good.tracks
    # and the file was rewritten: the next run reads it
    load_or_generate(tmp_path, **SMALL, seed=6)
    assert len(generations) == 1


def test_an_unwritable_cache_costs_only_the_cache(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache directory should be")
    with caplog.at_level(logging.WARNING, logger="worker.demo.catalogue_cache"):
        catalogue = load_or_generate(blocker, **SMALL, seed=8)
    assert len(catalogue.tracks) == SMALL["tracks"]
    assert "could not cache" in caplog.text


def test_default_cache_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "plyr-recs"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # invalid by the spec: ignored
    assert default_cache_dir() == Path.home() / ".cache" / "plyr-recs"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "plyr-recs"
