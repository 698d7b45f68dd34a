"""the pure parts of the fleet work: the v2 decoder, dictionary zstd, the subscription URL
of each wire, the blind-host watch, the fleet setting. no sockets."""

from __future__ import annotations

import orjson
import pytest
import zstandard

from jetstream.blind import BlindHostWatch
from jetstream.events import (
    InvalidReason,
    ListCommit,
    ListDelete,
    Rejected,
    RepoResync,
    Skipped,
    SkipReason,
    TrackDelete,
)
from jetstream.frames import FrameLimits, decode_frame
from jetstream.frames_v2 import decode_v2_frame, rfc3339_of, time_us_of
from jetstream.replay_v2 import render_v2
from jetstream.subscription import Wire, dictionary_url, subscribe_url, wire_of
from jetstream.zstd_frames import (
    FrameCompressor,
    FrameDecompressor,
    InvalidDictionary,
    load_dictionary,
)
from tests.support.jetstream_v2 import repo_sync, story_dictionary, track_delete
from tests.support.jetstream_world import did, tid
from tests.support.story import STORY
from worker.settings import PUBLIC_JETSTREAM_HOSTS, Settings

LIMITS = FrameLimits()
V2 = "wss://jetstream.us-east.bsky.network/xrpc/network.bsky.jetstream.subscribeEvents"


def test_every_story_frame_decodes_alike_on_both_wires() -> None:
    for seq, frame in enumerate(STORY, start=1):
        v1 = decode_frame(frame, LIMITS)
        v2 = decode_v2_frame(render_v2(frame.encode(), seq) or b"", LIMITS)
        assert type(v2) is type(v1)
        assert v2.time_us == v1.time_us
        assert v2.seq == seq
        assert v1.seq is None
        if isinstance(v1, ListCommit | ListDelete):
            assert isinstance(v2, ListCommit | ListDelete)
            assert (v2.playlist_uri, v2.rev) == (v1.playlist_uri, v1.rev)
        if isinstance(v1, Skipped):
            assert isinstance(v2, Skipped)
            assert v2.reason == v1.reason


def test_track_deletes_are_markers_and_other_plyr_commits_are_liveness() -> None:
    owner = did(3)
    event = decode_frame(track_delete(owner=owner, rkey=tid(1), rev=tid(2), time_us=5), LIMITS)
    uri = f"at://{owner}/fm.plyr.track/{tid(1)}"
    assert event == TrackDelete(5, owner, tid(1), tid(2), uri)
    bad = orjson.loads(track_delete(owner="nobody", rkey=tid(1), rev=tid(2), time_us=5))
    assert decode_frame(orjson.dumps(bad), LIMITS) == Rejected(InvalidReason.BAD_DID, 5)
    like = {**bad, "did": owner, "commit": {**bad["commit"], "collection": "fm.plyr.like"}}
    assert decode_frame(orjson.dumps(like), LIMITS) == Skipped(SkipReason.PLYR_ACTIVITY, 5)
    # staging's namespace is its own: production's commits are not its liveness
    staging = FrameLimits(list_collection="fm.plyr.stg.list")
    assert staging.wanted_collections == "fm.plyr.stg.*"
    assert decode_frame(orjson.dumps(like), staging) == Skipped(SkipReason.OTHER_COLLECTION, 5)


def test_a_sync_is_a_repo_resync_marker_on_v2() -> None:
    owner = did(4)
    frame = render_v2(repo_sync(owner=owner, rev=9, time_us=1_763_700_000_000_001), 77)
    assert frame is not None
    assert decode_v2_frame(frame, LIMITS) == RepoResync(1_763_700_000_000_001, owner, tid(9), 77)


def message(**payload: object) -> bytes:
    return orjson.dumps({"$type": "message", "payload": payload})


IDENTITY = "network.bsky.jetstream.subscribeEvents#identity"
GOOD_TIME = "2025-11-21T04:40:16.700000Z"


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (b"{", Rejected(InvalidReason.NOT_JSON, None)),
        (b"[]", Rejected(InvalidReason.NOT_OBJECT, None)),
        (b'{"$type": "nope"}', Rejected(InvalidReason.BAD_TYPE, None)),
        (b'{"$type": "error", "error": "ConsumerTooSlow"}', Skipped(SkipReason.SERVER_ERROR, None)),
        (message(**{"$type": "app.bsky.feed.post"}), Rejected(InvalidReason.BAD_TYPE, None)),
        (message(**{"$type": IDENTITY, "seq": 0, "time": GOOD_TIME}), "bad_seq"),
        (message(**{"$type": IDENTITY, "seq": True, "time": GOOD_TIME}), "bad_seq"),
        (message(**{"$type": IDENTITY, "seq": -5, "time": GOOD_TIME}), "bad_seq"),
        (message(**{"$type": IDENTITY, "seq": 4, "time": "yesterday"}), "bad_time"),
        (message(**{"$type": IDENTITY, "seq": 4, "time": "2025-11-21T04:40:16"}), "bad_time"),
        (message(**{"$type": IDENTITY, "seq": 4, "time": 17}), "bad_time"),
        (
            message(**{"$type": "network.bsky.jetstream.subscribeEvents#info", "name": "x"}),
            Skipped(SkipReason.INFO, None),
        ),
        (
            message(
                **{
                    "$type": "network.bsky.jetstream.subscribeEvents#new",
                    "seq": 4,
                    "time": GOOD_TIME,
                }
            ),
            Skipped(SkipReason.UNKNOWN_KIND, time_us_of(GOOD_TIME), 4),
        ),
    ],
)
def test_hostile_v2_frames_are_counted_never_raised(frame: bytes, expected: object) -> None:
    event = decode_v2_frame(frame, LIMITS)
    if isinstance(expected, str):
        assert isinstance(event, Rejected)
        assert event.reason == expected
    else:
        assert event == expected


def test_time_round_trips_and_rejects_zoneless_or_absurd_times() -> None:
    assert time_us_of(rfc3339_of(1_763_700_016_700_001)) == 1_763_700_016_700_001
    assert time_us_of("2025-11-21T05:40:16.700000+01:00") == time_us_of(GOOD_TIME)
    assert time_us_of("1969-12-31T23:59:59.000000Z") is None
    assert time_us_of("x" * 100) is None


def test_dictionary_zstd_frames_inflate_bounded() -> None:
    dictionary = load_dictionary(story_dictionary())
    frame = render_v2(STORY[0].encode(), 1) or b""
    compressed = FrameCompressor(dictionary).compress(frame)
    assert len(compressed) < len(frame) / 2
    decompressor = FrameDecompressor(dictionary)
    assert isinstance(decode_v2_frame(compressed, LIMITS, decompressor), ListCommit)
    # a bomb: declares (and would inflate to) far more than a frame may hold
    bomb = zstandard.ZstdCompressor(dict_data=dictionary).compress(b" " * 2_000_000)
    assert decode_v2_frame(bomb, LIMITS, decompressor) == Rejected(
        InvalidReason.FRAME_TOO_LARGE, None
    )
    # the same bomb without a declared size is stopped by the output bound
    unsized = zstandard.ZstdCompressor(dict_data=dictionary, write_content_size=False)
    assert decode_v2_frame(unsized.compress(b" " * 2_000_000), LIMITS, decompressor) == Rejected(
        InvalidReason.BAD_COMPRESSION, None
    )
    garbage = b"\x28\xb5\x2f\xfd" + b"\x00" * 40
    assert decode_v2_frame(garbage, LIMITS, decompressor) == Rejected(
        InvalidReason.BAD_COMPRESSION, None
    )
    with pytest.raises(InvalidDictionary):
        load_dictionary(b"not a dictionary")


def test_each_wire_gets_its_own_filter_and_cursor_names() -> None:
    v1 = "wss://jetstream1.us-east.bsky.network/subscribe?wantedCollections=x&other=1"
    assert wire_of(v1) is Wire.V1
    assert wire_of(V2) is Wire.V2
    assert subscribe_url(v1, "fm.plyr.*", 17) == (
        "wss://jetstream1.us-east.bsky.network/subscribe"
        "?other=1&wantedCollections=fm.plyr.%2A&cursor=17"
    )
    assert subscribe_url(V2, "fm.plyr.*", 42, zstd_dictionary=9) == (
        V2 + "?collections=fm.plyr.%2A&zstdDictionary=9&cursor=42"
    )
    assert dictionary_url(V2) == (
        "https://jetstream.us-east.bsky.network/xrpc/network.bsky.jetstream.getZstdDictionary"
    )


def test_the_fleet_setting() -> None:
    assert {wire_of(host) for host in PUBLIC_JETSTREAM_HOSTS} == {Wire.V1, Wire.V2}
    assert len(PUBLIC_JETSTREAM_HOSTS) == 6
    both = Settings(jetstream_urls="ws://a/subscribe, ws://b/subscribe", jetstream_url="ws://c")
    assert both.jetstream_hosts == ("ws://a/subscribe", "ws://b/subscribe")
    assert Settings(jetstream_url="ws://c/subscribe").jetstream_hosts == ("ws://c/subscribe",)
    assert Settings(jetstream_urls="  ").jetstream_hosts == PUBLIC_JETSTREAM_HOSTS


S = 1_000_000  # a second of stream, in µs


def test_a_blind_host_is_judged_by_stream_time_past_the_last_plyr_commit() -> None:
    watch = BlindHostWatch(window_seconds=60)
    watch.connected(100 * S)
    watch.observe(newest_us=150 * S, plyr_us=None)
    assert not watch.is_blind()
    watch.observe(newest_us=170 * S, plyr_us=165 * S)  # a like arrived: not blind
    watch.observe(newest_us=220 * S, plyr_us=None)
    assert not watch.is_blind()
    watch.observe(newest_us=226 * S, plyr_us=None)
    assert watch.is_blind()
    assert watch.silent_seconds() == 61
    assert watch.rotated() == 165 * S  # resume from the last plyr.fm position


def test_a_quiet_night_reads_each_window_twice_never_the_whole_night() -> None:
    """no plyr.fm commit for eight hours: every window looks blind, each rotation
    replays from the anchor, and the next host's pass through the window without
    a commit moves the anchor: replay per rotation stays one window."""
    watch = BlindHostWatch(window_seconds=900)
    watch.connected(0)
    host_reached = 0
    replayed: list[int] = []
    while host_reached < 8 * 3600 * S:
        # the host streams identity events until judged blind
        position = host_reached
        while not watch.is_blind():
            position += 10 * S
            watch.observe(newest_us=position, plyr_us=None)
        host_reached = position
        anchor = watch.rotated()
        assert anchor is not None
        replayed.append(host_reached - anchor)
        watch.connected(anchor)
        # the next host replays from the anchor, past what the previous one reached
        for replay in range(anchor, host_reached + 10 * S, 10 * S):
            watch.observe(newest_us=replay, plyr_us=None)
    assert len(replayed) >= 30
    assert max(replayed) <= 2 * 900 * S + 20 * S  # bounded, not growing with the night


def test_missed_versions_move_the_anchor_back() -> None:
    watch = BlindHostWatch(window_seconds=900)
    watch.connected(500 * S)
    watch.observe(newest_us=600 * S, plyr_us=590 * S)
    watch.missed(since_us=300 * S)
    assert watch.rotated() == 300 * S
    disabled = BlindHostWatch(window_seconds=0)
    disabled.connected(0)
    disabled.observe(newest_us=10**9 * S, plyr_us=None)
    assert not disabled.is_blind()
