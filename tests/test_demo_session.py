"""the embedded demo's session of edits.

pure generation, no servers: a small catalogue (2,000 tracks) keeps the file fast.
the session is checked against the consumer's own frame decoder and against a
small reducer written here, independently of the generator's bookkeeping.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
import orjson
import pytest

from engine.types import Strategy
from jetstream.events import ListCommit, ListDelete, Rejected, Skipped, SkipReason
from jetstream.frames import FrameLimits, decode_frame
from jetstream.syntax import is_cid, record_uri_pattern, tid
from worker.demo import (
    DemoCatalogue,
    DemoSession,
    StepKind,
    generate_catalogue,
    generate_session,
)
from worker.demo.identifiers import record_cid

SMALL = {"tracks": 2_000, "artists": 60, "regions": 8, "dim": 512}
TRACK_URI = record_uri_pattern("fm.plyr.track")
TID = re.compile(r"[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}")


@pytest.fixture(scope="module")
def catalogue() -> DemoCatalogue:
    return generate_catalogue(**SMALL, seed=3)


@pytest.fixture(scope="module")
def session(catalogue: DemoCatalogue) -> DemoSession:
    return generate_session(catalogue, playlists=12, seed=5)


# --- the session -------------------------------------------------------------------


def test_the_consumer_decodes_every_frame_as_its_step_says(session: DemoSession) -> None:
    limits = FrameLimits()
    expected_skip = {
        StepKind.IGNORED_LIST: {SkipReason.ALBUM, SkipReason.LIKED},
        StepKind.OTHER_COLLECTION: {SkipReason.OTHER_COLLECTION, SkipReason.PLYR_ACTIVITY},
        StepKind.IDENTITY: {SkipReason.IDENTITY},
        StepKind.ACCOUNT: {SkipReason.ACCOUNT},
    }
    for step in session.steps:
        event = decode_frame(step.frame, limits)
        if step.kind is StepKind.MALFORMED:
            assert isinstance(event, Rejected), step.note
            continue
        message = orjson.loads(step.frame)
        assert set(message) >= {"did", "time_us", "kind"}
        assert message["time_us"] == step.time_us
        if step.kind in (StepKind.CREATE, StepKind.UPDATE, StepKind.REPLAY):
            assert isinstance(event, ListCommit), step.note
            assert event.playlist_uri == step.playlist_uri
        elif step.kind is StepKind.DELETE:
            assert isinstance(event, ListDelete), step.note
            assert "record" not in message["commit"]
            assert "cid" not in message["commit"]
        else:
            assert isinstance(event, Skipped)
            assert event.reason in expected_skip[step.kind]


def test_every_kind_of_step_is_in_the_story(session: DemoSession) -> None:
    kinds = Counter(step.kind for step in session.steps)
    assert set(kinds) == set(StepKind)
    assert kinds[StepKind.MALFORMED] >= 5
    assert kinds[StepKind.CREATE] == 12
    # the album and the liked list are named, so a test can check they stay uncached
    assert len(session.ignored_list_uris) == 2
    assert not set(session.ignored_list_uris) & set(session.expected)


def test_time_moves_forward_and_revs_per_repo_too(session: DemoSession) -> None:
    times = [step.time_us for step in session.steps]
    assert times == sorted(times)
    assert len(set(times)) == len(times)
    stamped = []
    for frame in session.frames:
        try:
            message = orjson.loads(frame)
        except orjson.JSONDecodeError:
            continue
        if isinstance(message, dict) and type(message.get("time_us")) is int:
            stamped.append(message["time_us"])
    assert stamped == sorted(stamped)
    assert len(set(stamped)) == len(stamped)

    last_rev: dict[str, str] = {}
    seen_commits: dict[tuple[str, str], str] = {}  # (did, rev) -> cid
    for step in session.steps:
        if step.kind in (StepKind.MALFORMED, StepKind.IDENTITY, StepKind.ACCOUNT):
            continue
        message = orjson.loads(step.frame)
        did, rev = message["did"], message["commit"]["rev"]
        assert TID.fullmatch(rev)
        if step.kind is StepKind.REPLAY:
            # a redelivery: exactly a commit seen before, never a new revision
            assert seen_commits[(did, rev)] == message["commit"]["cid"]
            continue
        assert rev > last_rev.get(did, ""), step.note
        last_rev[did] = rev
        seen_commits[(did, rev)] = message["commit"].get("cid")


def test_playlist_records_hold_catalogue_tracks_within_bounds(
    session: DemoSession, catalogue: DemoCatalogue
) -> None:
    cid_of = dict(zip(catalogue.track_uris, catalogue.track_cids, strict=True))
    sizes = []
    for step in session.steps:
        if step.kind not in (StepKind.CREATE, StepKind.UPDATE, StepKind.IGNORED_LIST):
            continue
        record = orjson.loads(step.frame)["commit"]["record"]
        assert record["$type"] == "fm.plyr.list"
        assert record["createdAt"].endswith("Z")
        assert len(record["items"]) <= 500
        uris = [item["subject"]["uri"] for item in record["items"]]
        assert len(set(uris)) == len(uris)
        for item in record["items"]:
            assert TRACK_URI.fullmatch(item["subject"]["uri"])
            assert cid_of[item["subject"]["uri"]] == item["subject"]["cid"]
        sizes.append(len(uris))
    assert max(sizes) <= 60


def test_cids_come_from_the_record_content(session: DemoSession) -> None:
    for step in session.steps:
        if step.kind in (StepKind.CREATE, StepKind.UPDATE, StepKind.REPLAY):
            commit = orjson.loads(step.frame)["commit"]
            assert commit["cid"] == record_cid(commit["record"])
            assert is_cid(commit["cid"])
            assert len(commit["cid"]) == 59
    record = {"name": "a", "items": [1, 2], "listType": "playlist"}
    reordered_keys = {"listType": "playlist", "items": [1, 2], "name": "a"}
    assert record_cid(record) == record_cid(reordered_keys)
    assert record_cid(record) != record_cid({**record, "items": [2, 1]})
    assert record_cid(record) != record_cid({**record, "name": "b"})


def test_reorders_and_renames_keep_the_tracks_and_change_the_cid(session: DemoSession) -> None:
    previous: dict[str, tuple[str, list[str], str]] = {}  # uri -> (cid, track uris, name)
    reorders = renames = 0
    for step in session.steps:
        if step.kind not in (StepKind.CREATE, StepKind.UPDATE):
            continue
        commit = orjson.loads(step.frame)["commit"]
        name, uris = (
            commit["record"]["name"],
            [i["subject"]["uri"] for i in commit["record"]["items"]],
        )
        playlist_uri = step.playlist_uri or ""
        if playlist_uri in previous:
            cid_before, uris_before, name_before = previous[playlist_uri]
            assert commit["cid"] != cid_before  # every edit is a new version
            if uris != uris_before and sorted(uris) == sorted(uris_before):
                reorders += 1
            if uris == uris_before and name != name_before:
                renames += 1
        previous[playlist_uri] = (commit["cid"], uris, name)
    assert reorders >= 3
    assert renames >= 3


def test_a_burst_edits_one_playlist_in_quick_succession(session: DemoSession) -> None:
    steps = session.steps
    gaps = [
        later.time_us - earlier.time_us
        for earlier, later in itertools.pairwise(steps)
        if earlier.kind is later.kind is StepKind.UPDATE
        and earlier.playlist_uri == later.playlist_uri
    ]
    typical = np.median(np.diff([step.time_us for step in steps]))
    assert sum(gap < typical / 3 for gap in gaps) >= 3


@dataclass(frozen=True)
class _Reduced:
    rev: str
    deleted: bool
    cid: str | None = None
    track_uris: tuple[str, ...] = ()


def _reduce(frames: list[str]) -> dict[str, _Reduced]:
    """what a careful consumer ends up believing: per list URI, the newest revision of
    a valid playlist commit wins; everything else changes nothing."""
    state: dict[str, _Reduced] = {}
    for frame in frames:
        try:
            message = orjson.loads(frame)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(message, dict) or message.get("kind") != "commit":
            continue
        commit = message.get("commit")
        if not isinstance(commit, dict) or commit.get("collection") != "fm.plyr.list":
            continue
        rev = commit.get("rev")
        if not isinstance(rev, str) or not TID.fullmatch(rev):
            continue
        uri = f"at://{message['did']}/fm.plyr.list/{commit['rkey']}"
        if uri in state and rev <= state[uri].rev:  # a redelivery or an older revision
            continue
        if commit.get("operation") == "delete":
            state[uri] = _Reduced(rev, deleted=True)
            continue
        record = commit.get("record")
        if not isinstance(record, dict) or record.get("listType") != "playlist":
            continue
        items = record.get("items")
        if not isinstance(items, list) or len(items) > 500:
            continue
        uris = [item.get("subject", {}).get("uri") for item in items if isinstance(item, dict)]
        if len(uris) != len(items) or not all(
            isinstance(uri, str) and TRACK_URI.fullmatch(uri) for uri in uris
        ):
            continue
        state[uri] = _Reduced(rev, deleted=False, cid=commit["cid"], track_uris=tuple(uris))
    return state


def test_expected_is_what_replaying_the_frames_gives(session: DemoSession) -> None:
    replayed = _reduce(session.frames)
    assert set(replayed) == set(session.expected)
    for uri, expected in session.expected.items():
        state = replayed[uri]
        assert expected.deleted == state.deleted
        if expected.deleted:
            assert expected.cid is None
            assert expected.track_uris == ()
        else:
            assert (expected.cid, expected.track_uris) == (state.cid, state.track_uris)
        assert uri.startswith(f"at://{expected.owner_did}/fm.plyr.list/")


def test_final_playlists_cover_every_strategy_and_some_are_deleted(session: DemoSession) -> None:
    final = [p for p in session.expected.values() if not p.deleted]
    strategies = Counter(p.strategy for p in final)
    assert {Strategy.DIRECT, Strategy.RRF, Strategy.KMEANS} <= set(strategies)
    assert sum(p.deleted for p in session.expected.values()) >= 2
    assert max(len(p.track_uris) for p in final) >= 30


def test_playlists_are_owned_by_active_artists_and_sound_coherent(
    session: DemoSession, catalogue: DemoCatalogue
) -> None:
    artists = {artist.did: artist for artist in catalogue.artists}
    region_of = dict(zip(catalogue.track_uris, catalogue.regions.tolist(), strict=True))
    for playlist in session.expected.values():
        assert not artists[playlist.owner_did].deactivated
        if len(playlist.track_uris) >= 6:
            counts = Counter(region_of[uri] for uri in playlist.track_uris)
            top_two = sum(count for _, count in counts.most_common(2))
            assert top_two / len(playlist.track_uris) >= 0.75, counts


async def test_applying_the_steps_keeps_the_catalogue_in_step(session: DemoSession) -> None:
    catalog = generate_catalogue(**SMALL, seed=3).catalog  # a fresh copy: apply mutates it
    for index, step in enumerate(session.steps):
        session.apply(index, catalog)
        if step.kind in (StepKind.CREATE, StepKind.UPDATE):
            ref = await catalog.resolve_playlist(step.playlist_uri or "")
            assert ref is not None
            row = await catalog.get_playlist(ref.playlist_id)
            assert row is not None
            assert row.record_cid == orjson.loads(step.frame)["commit"]["cid"]
    for uri, expected in session.expected.items():
        ref = await catalog.resolve_playlist(uri)
        if expected.deleted:
            assert ref is None
            assert await catalog.get_playlist(expected.playlist_id) is None
            continue
        assert ref is not None
        assert ref.playlist_id == expected.playlist_id
        assert ref.owner_did == expected.owner_did
        row = await catalog.get_playlist(expected.playlist_id)
        assert row is not None
        assert row.record_cid == expected.cid
        assert not row.is_private
    for uri in session.ignored_list_uris:
        assert await catalog.resolve_playlist(uri) is None


def test_a_seed_gives_the_same_session_and_another_a_different_one(
    catalogue: DemoCatalogue,
) -> None:
    first = generate_session(catalogue, playlists=8, seed=1)
    again = generate_session(catalogue, playlists=8, seed=1)
    other = generate_session(catalogue, playlists=8, seed=2)
    assert first.frames == again.frames
    assert first.expected == again.expected
    assert first.frames != other.frames


def test_start_time_and_spacing_shape_the_clock(catalogue: DemoCatalogue) -> None:
    start = 1_800_000_000_000_000
    paced = generate_session(catalogue, playlists=6, start_time_us=start, spacing_ms=1000)
    assert paced.steps[0].time_us > start
    assert orjson.loads(paced.steps[0].frame)["commit"]["rev"] >= tid(start)
    gaps = np.diff([step.time_us for step in paced.steps])
    assert 400_000 <= np.median(gaps) <= 1_600_000


@pytest.mark.parametrize("playlists", [0, 5, 201])
def test_session_sizes_are_bounded(catalogue: DemoCatalogue, playlists: int) -> None:
    with pytest.raises(ValueError, match="playlists"):
        generate_session(catalogue, playlists=playlists)
