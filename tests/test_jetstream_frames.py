"""the frame decoder: the sample story, every bad frame by reason, and properties."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jetstream import (
    FrameLimits,
    InvalidReason,
    ListCommit,
    ListDelete,
    Rejected,
    Skipped,
    SkipReason,
    decode_frame,
)
from jetstream.records import RecordLimits
from tests.support.jetstream_world import cid, did, list_commit, tid, track_uri
from tests.support.samples import bad_frames, story_frames

LIMITS = FrameLimits()
OWNER = did(7)


def test_the_story_decodes_into_changes_and_skips() -> None:
    events = [decode_frame(frame, LIMITS) for frame in story_frames()]
    kinds = [
        type(event).__name__ if not isinstance(event, Skipped) else event.reason.value
        for event in events
    ]
    assert kinds == [
        "ListCommit",  # p1 created
        "ListCommit",
        "ListCommit",
        "ListCommit",  # reordered
        "ListCommit",  # renamed
        "ListCommit",  # the replay: the decoder passes it, the guard drops it
        "album",
        "liked",
        "ListCommit",  # p2, 12 tracks
        "ListCommit",  # p3, unknown to plyr
        "plyr_activity",  # a track created: liveness only
        "identity",
        "account",
        "ListCommit",  # p4 created
        "ListDelete",  # p4 deleted
    ]
    p1 = events[2]
    assert isinstance(p1, ListCommit)
    assert p1.playlist_uri == "at://did:plc:6eougfhpazchdzjqplapphgj/fm.plyr.list/3m64hnzv42222"
    assert p1.rev == "3m64ho66gl223"
    assert p1.cid == "bafyreigdg5jg77pe5zcrv7vpquq5exgysfgb6jdt22sx3hfk57vz3ixhfy"
    assert len(p1.track_uris) == 8
    assert p1.track_uris[0] == ("at://did:plc:x66s2o4a2qpoastvjtboqbjb/fm.plyr.track/3m62zzptrk222")
    reordered = events[3]
    assert isinstance(reordered, ListCommit)
    assert reordered.track_uris == tuple(reversed(p1.track_uris))  # order is kept
    delete = events[14]
    assert isinstance(delete, ListDelete)
    assert delete.playlist_uri.endswith("/fm.plyr.list/3m64hnzv42a22")
    assert delete.time_us == 1763700021200000


# the file's frames, in order, and the reason each one must be counted under.
BAD_FRAME_REASONS = [
    InvalidReason.NOT_JSON,  # not json at all
    InvalidReason.NOT_OBJECT,  # [1,2,3]
    InvalidReason.BAD_TIME_US,  # no time_us
    InvalidReason.BAD_TIME_US,  # time_us "soon"
    InvalidReason.BAD_REV,  # no rev (and a record that is a string)
    InvalidReason.BAD_ITEMS,  # items "many"
    InvalidReason.BAD_TRACK_URI,  # https:// and a non-DID
    InvalidReason.TOO_MANY_ITEMS,  # 600 items
    InvalidReason.BAD_CID,  # an update without a cid
    InvalidReason.BAD_DID,  # a 5000-character DID (and a "../../etc" rkey)
]


def test_every_bad_frame_is_rejected_with_its_reason() -> None:
    frames = bad_frames()
    assert len(frames) == len(BAD_FRAME_REASONS)
    reasons = []
    for frame in frames:
        event = decode_frame(frame.encode(), LIMITS)
        assert isinstance(event, Rejected)
        reasons.append(event.reason)
    assert reasons == BAD_FRAME_REASONS


def test_a_rejected_frame_keeps_its_time_so_the_cursor_can_pass_it() -> None:
    event = decode_frame(bad_frames()[5], LIMITS)
    assert event == Rejected(InvalidReason.BAD_ITEMS, 1763700021200002)


def _commit(**changes: Any) -> dict[str, Any]:
    frame = orjson.loads(
        list_commit(
            owner=OWNER,
            rkey=tid(1),
            rev=tid(2),
            record_cid=cid("x"),
            tracks=[track_uri(1), track_uri(2)],
            time_us=1_700_000_000_000_000,
        )
    )
    for path, value in changes.items():
        target = frame
        *parents, leaf = path.split(".")
        for parent in parents:
            target = target[parent]
        if value is _DELETE:
            del target[leaf]
        else:
            target[leaf] = value
    result: dict[str, Any] = frame
    return result


_DELETE = object()


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"did": "did:plc:short"}, InvalidReason.BAD_DID),
        ({"did": "did:key:z6Mkabc"}, InvalidReason.BAD_DID),
        ({"commit.rkey": ".."}, InvalidReason.BAD_RKEY),
        ({"commit.rkey": "a/b"}, InvalidReason.BAD_RKEY),
        ({"commit.rev": "3M64HO"}, InvalidReason.BAD_REV),
        ({"commit.operation": "upsert"}, InvalidReason.BAD_OPERATION),
        ({"commit.cid": "Qm-not-base32"}, InvalidReason.BAD_CID),
        ({"commit.collection": 7}, InvalidReason.BAD_COLLECTION),
        ({"commit": []}, InvalidReason.BAD_COMMIT),
        ({"kind": 3}, InvalidReason.BAD_KIND),
        ({"time_us": True}, InvalidReason.BAD_TIME_US),
        ({"time_us": 1.5}, InvalidReason.BAD_TIME_US),
        ({"time_us": -5}, InvalidReason.BAD_TIME_US),
        ({"commit.record": "nope"}, InvalidReason.BAD_RECORD),
        ({"commit.record.listType": 1}, InvalidReason.BAD_LIST_TYPE),
        ({"commit.record.name": ["x"]}, InvalidReason.BAD_NAME),
        ({"commit.record.name": "n" * 1025}, InvalidReason.NAME_TOO_LONG),
        ({"commit.record.items": [{"subject": "x"}]}, InvalidReason.BAD_ITEM),
        ({"commit.record.items": [None]}, InvalidReason.BAD_ITEM),
        (
            {"commit.record.items": [{"subject": {"uri": f"at://{OWNER}/fm.plyr.list/abc"}}]},
            InvalidReason.BAD_TRACK_URI,
        ),
        (
            {"commit.record.items": [{"subject": {"uri": track_uri(1) + "/extra"}}]},
            InvalidReason.BAD_TRACK_URI,
        ),
    ],
)
def test_each_field_is_validated(changes: dict[str, Any], expected: InvalidReason) -> None:
    event = decode_frame(orjson.dumps(_commit(**changes)), LIMITS)
    assert isinstance(event, Rejected)
    assert event.reason == expected


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"commit.record.listType": "album"}, SkipReason.ALBUM),
        ({"commit.record.listType": "liked"}, SkipReason.LIKED),
        ({"commit.collection": "app.bsky.feed.post"}, SkipReason.OTHER_COLLECTION),
        ({"kind": "sync"}, SkipReason.UNKNOWN_KIND),
    ],
)
def test_frames_that_are_not_our_business_are_skipped(
    changes: dict[str, Any], expected: SkipReason
) -> None:
    event = decode_frame(orjson.dumps(_commit(**changes)), LIMITS)
    assert event == Skipped(expected, 1_700_000_000_000_000)


def test_an_unknown_or_missing_list_type_counts_as_a_playlist() -> None:
    for changes in ({"commit.record.listType": "mixtape"}, {"commit.record.listType": _DELETE}):
        assert isinstance(decode_frame(orjson.dumps(_commit(**changes)), LIMITS), ListCommit)


def test_an_empty_playlist_is_a_change_with_no_tracks() -> None:
    event = decode_frame(orjson.dumps(_commit(**{"commit.record.items": []})), LIMITS)
    assert isinstance(event, ListCommit)
    assert event.track_uris == ()


def test_the_limits_are_the_configured_ones() -> None:
    frame = orjson.dumps(
        _commit(**{"commit.record.items": [{"subject": {"uri": track_uri(1)}}] * 3})
    )
    tight = FrameLimits(record=RecordLimits(max_items=2))
    assert decode_frame(frame, tight) == Rejected(
        InvalidReason.TOO_MANY_ITEMS, 1_700_000_000_000_000
    )
    assert isinstance(decode_frame(frame, LIMITS), ListCommit)
    small = FrameLimits(max_frame_bytes=len(frame) - 1)
    assert decode_frame(frame, small) == Rejected(InvalidReason.FRAME_TOO_LARGE, None)
    staging = FrameLimits(list_collection="fm.plyr.staging.list")
    assert decode_frame(frame, staging) == Skipped(
        SkipReason.OTHER_COLLECTION, 1_700_000_000_000_000
    )


def test_a_track_uri_must_point_at_the_configured_track_collection() -> None:
    frame = orjson.dumps(_commit())
    other = FrameLimits(record=RecordLimits(track_collection="fm.plyr.staging.track"))
    assert decode_frame(frame, other) == Rejected(
        InvalidReason.BAD_TRACK_URI, 1_700_000_000_000_000
    )


def test_awkward_json_is_a_rejection_not_an_exception() -> None:
    cases = [
        b"",
        b"\xff\xfe",
        "\ud800",  # a lone surrogate in a str frame
        b"[" * 5000 + b"]" * 5000,  # deeper than orjson recurses
        b'{"time_us": 123456789012345678901234567890}',  # beyond 64 bits
        b"null",
        b'"a string"',
    ]
    for frame in cases:
        assert isinstance(decode_frame(frame, LIMITS), Rejected)


# --- properties ---------------------------------------------------------------------------

EVENT_TYPES = (ListCommit, ListDelete, Skipped, Rejected)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


def _mutated_frames() -> st.SearchStrategy[dict[str, Any]]:
    """real commit frames with one field replaced by arbitrary JSON: the shapes most
    likely to reach deep into the validator."""
    paths = [
        "did",
        "time_us",
        "kind",
        "commit",
        "commit.rev",
        "commit.operation",
        "commit.collection",
        "commit.rkey",
        "commit.cid",
        "commit.record",
        "commit.record.listType",
        "commit.record.name",
        "commit.record.items",
    ]
    return st.builds(
        lambda path, value: _commit(**{path: value}), st.sampled_from(paths), json_values
    )


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_any_bytes_decode_to_an_event(frame: bytes) -> None:
    assert isinstance(decode_frame(frame, LIMITS), EVENT_TYPES)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=512))
def test_any_text_decodes_to_an_event(frame: str) -> None:
    assert isinstance(decode_frame(frame, LIMITS), EVENT_TYPES)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_json_decodes_to_an_event(value: Any) -> None:
    # stdlib json on purpose: it writes what orjson refuses to (big ints, Infinity).
    assert isinstance(decode_frame(json.dumps(value).encode(), LIMITS), EVENT_TYPES)


@settings(max_examples=400, deadline=None)
@given(_mutated_frames())
def test_a_mutated_commit_is_a_change_only_if_it_is_still_valid(frame: dict[str, Any]) -> None:
    event = decode_frame(json.dumps(frame).encode(), LIMITS)
    assert isinstance(event, EVENT_TYPES)
    if isinstance(event, ListCommit):
        # whatever got through is exactly what the worker may rely on.
        assert event.playlist_uri == f"at://{event.did}/fm.plyr.list/{event.rkey}"
        assert all(uri.startswith("at://did:") for uri in event.track_uris)
        assert len(event.track_uris) <= LIMITS.record.max_items


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64), st.integers(min_value=0, max_value=600))
def test_a_corrupted_real_frame_decodes_to_an_event(junk: bytes, at: int) -> None:
    frame = story_frames()[2].encode()
    position = min(at, len(frame))
    assert isinstance(decode_frame(frame[:position] + junk + frame[position:], LIMITS), EVENT_TYPES)
