"""the cache contract: keys, payload, fingerprint."""

from __future__ import annotations

import random
import zlib
from dataclasses import replace
from datetime import UTC, datetime

import orjson
import pytest

from engine.cache import (
    ANSWER_TRACKS,
    CACHE_TTL_SECONDS,
    MAX_CACHED_TRACKS,
    CachedRecommendations,
    CacheFormatError,
    PlaylistState,
    Ranked,
    cache_key,
    cache_key_pattern,
    fingerprint,
    private_token,
    state_key,
)
from engine.state_codec import MAX_DOCUMENT_BYTES, TAG
from engine.types import Because, Track


def tracks(n: int) -> list[Track]:
    return [Track(i, f"title {i}", f"h{i}", f"d{i}", None if i % 2 else f"u{i}") for i in range(n)]


def test_key_format_is_the_one_plyr_fm_reads() -> None:
    assert cache_key("p-1", "bafycid") == "plyr:recommendations:p-1:bafycid"
    assert CACHE_TTL_SECONDS == 24 * 3600


def test_state_key_never_collides_with_a_version_key() -> None:
    assert not state_key("p-1").startswith("plyr:recommendations:")
    assert state_key("p-1").endswith("p-1")


def test_private_token_is_iso_updated_at() -> None:
    at = datetime(2025, 11, 21, 4, 40, 3, 123456, tzinfo=UTC)
    assert private_token(at) == "2025-11-21T04:40:03.123456+00:00"
    assert cache_key("p", private_token(at)).endswith(":2025-11-21T04:40:03.123456+00:00")


@pytest.mark.parametrize(("playlist_id", "token"), [("", "cid"), ("p", ""), ("p", "x" * 201)])
def test_key_rejects_empty_or_unbounded_parts(playlist_id: str, token: str) -> None:
    with pytest.raises(ValueError, match="cache_key"):
        cache_key(playlist_id, token)


def test_scan_pattern_escapes_glob_characters() -> None:
    assert cache_key_pattern("a*b") == "plyr:recommendations:a\\*b:*"


def test_fingerprint_ignores_order_and_duplicates_only() -> None:
    assert fingerprint([3, 1, 2]) == fingerprint([1, 2, 3, 3])
    assert fingerprint([1, 2, 3]) != fingerprint([1, 2, 4])
    assert fingerprint([12, 3]) != fingerprint([1, 23])  # separators matter
    assert fingerprint([]) != fingerprint([0])


def test_payload_round_trip_and_api_response() -> None:
    value = CachedRecommendations(
        tracks(MAX_CACHED_TRACKS + 2), True, strategy="kmeans", fingerprint="f"
    )
    raw = value.to_json()
    # the stored form: the first page whole (DESIGN.md: "tracks": up to 10), the
    # ranks after it by id, up to the 35 an entry keeps
    document = orjson.loads(raw)
    assert [t["id"] for t in document["tracks"]] == list(range(ANSWER_TRACKS)) == list(range(10))
    assert document["more"] == [[i] for i in range(10, MAX_CACHED_TRACKS)]
    decoded = CachedRecommendations.from_json(raw)
    assert decoded.tracks == tracks(ANSWER_TRACKS)
    assert decoded.more == tuple(Ranked(i) for i in range(10, 35))
    assert decoded.ids() == list(range(MAX_CACHED_TRACKS)) == list(range(35))
    # "more" within the first page is a read of the whole tracks
    assert not decoded.reaches_past_whole(3, 3)
    assert decoded.response(3, 3)["tracks"] == [t.as_json() for t in tracks(6)[3:]]
    assert decoded.reaches_past_whole(3, 8)
    # past it, the ranks are hydrated (here from the tracks themselves)
    whole = decoded.with_more({t.id: t for t in tracks(35)})
    assert whole.tracks == tracks(35)
    assert whole.more == ()
    assert not whole.reaches_past_whole(10, 25)
    assert whole.response(10, 25)["tracks"] == [t.as_json() for t in tracks(35)[25:]]
    # stored again, the same form
    assert orjson.loads(whole.to_json()) == document == orjson.loads(decoded.to_json())
    assert decoded.strategy == "kmeans"
    response = decoded.response(3)
    assert response == {"tracks": [t.as_json() for t in tracks(3)], "available": True}
    assert set(response["tracks"][0]) == {  # type: ignore[index]
        "id",
        "title",
        "artist_handle",
        "artist_display_name",
        "image_url",
    }


def test_ranks_kept_by_id_keep_their_explanation_and_hydrate_as_computed() -> None:
    """a rank past the first page keeps which playlist track explains it; hydrated, a
    rank no longer eligible is left out, and an explanation no longer eligible
    explains nothing (as `engine.recommend` does when it computes)."""
    playlist_track = Track(900, "the song", "h", "d", None)
    ranked = [replace(t, because=Because(900, "the song")) for t in tracks(14)]
    value = CachedRecommendations(ranked, True)
    decoded = CachedRecommendations.from_json(value.to_json())
    assert decoded.more == tuple(Ranked(i, 900) for i in range(10, 14))
    eligible = {t.id: t for t in [*tracks(14), playlist_track] if t.id != 12}
    assert decoded.with_more(eligible).tracks == [t for t in ranked if t.id != 12]
    unexplained = decoded.with_more({t.id: t for t in tracks(14)})
    assert [t.because for t in unexplained.tracks[10:]] == [None] * 4
    assert unexplained.tracks[:10] == ranked[:10]  # the whole ones keep theirs


def test_an_entry_written_whole_is_read_as_before() -> None:
    """entries written before the ranks past 10 were kept by id hold 35 whole tracks
    and no `more`: read as they are, nothing to hydrate."""
    old = orjson.dumps({"tracks": [t.as_json() for t in tracks(35)], "available": True})
    decoded = CachedRecommendations.from_json(old)
    assert decoded.tracks == tracks(35)
    assert decoded.more == ()
    assert not decoded.reaches_past_whole(10, 25)


@pytest.mark.parametrize(
    "more",
    [{}, [5], [["5"]], [[]], [[1, 2, 3]], [[True]], [[1, None]]],
)
def test_a_malformed_more_is_a_format_error(more: object) -> None:
    raw = orjson.dumps({"tracks": [], "available": True, "more": more})
    with pytest.raises(CacheFormatError, match="more"):
        CachedRecommendations.from_json(raw)


def test_more_is_bounded_by_the_ranks_an_entry_keeps() -> None:
    raw = orjson.dumps(
        {
            "tracks": [t.as_json() for t in tracks(10)],
            "available": True,
            "more": [[i] for i in range(10, 500)],
        }
    )
    assert len(CachedRecommendations.from_json(raw).ids()) == MAX_CACHED_TRACKS


def test_unavailable_payload() -> None:
    raw = CachedRecommendations([], False).to_json()
    assert orjson.loads(raw)["tracks"] == []
    assert CachedRecommendations.from_json(raw).response(3) == {"tracks": [], "available": False}


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"tracks": []}',
        b'{"tracks": {}, "available": true}',
        b'{"tracks": [{"id": "1"}], "available": true}',
        b'{"tracks": [{"id": true, "title": "t", "artist_handle": "h", '
        b'"artist_display_name": "d", "image_url": null}], "available": true}',
        b"x" * 70_000,
    ],
)
def test_malformed_payloads_are_format_errors(raw: bytes) -> None:
    with pytest.raises(CacheFormatError):
        CachedRecommendations.from_json(raw)


def test_state_round_trip_and_validation() -> None:
    state = PlaylistState(
        "cid", fingerprint([1, 2]), [1, 2], ["at://a", "at://b"], "3m6", "did:plc:owner"
    )
    assert PlaylistState.from_json(state.to_json()) == state
    # a state written before owners were kept reads as "owner unknown"
    older = PlaylistState.from_json(b'{"token": "cid", "fingerprint": "f"}')
    assert older.owner_did == ""
    with pytest.raises(CacheFormatError):
        PlaylistState.from_json(b'{"track_ids": ["1"]}')
    with pytest.raises(CacheFormatError):
        PlaylistState.from_json(b"{")


BASE32 = "234567abcdefghijklmnopqrstuvwxyz"


def realistic_state(tracks: int, artists: int) -> PlaylistState:
    """a state as plyr.fm's would be: random did:plc DIDs, TID record keys, a CID."""
    rng = random.Random(tracks * 1_000 + artists)
    dids = ["did:plc:" + "".join(rng.choices(BASE32, k=24)) for _ in range(artists)]
    uris = [
        f"at://{rng.choice(dids)}/fm.plyr.track/3{''.join(rng.choices(BASE32, k=12))}"
        for _ in range(tracks)
    ]
    ids = [rng.randrange(1, 200_000) for _ in range(tracks)]
    cid = "bafyrei" + "".join(rng.choices(BASE32, k=52))
    return PlaylistState(cid, fingerprint(ids), ids, uris, "3m6abcdefgh22", dids[0])


def test_a_state_is_stored_packed_and_read_back() -> None:
    state = realistic_state(22, 15)
    packed = state.encode()
    assert packed.startswith(TAG + state.rev.encode() + b"\n")
    assert PlaylistState.decode(packed) == state


@pytest.mark.parametrize(("tracks", "artists", "budget"), [(22, 15, 700), (40, 30, 1_120)])
def test_a_packed_state_is_a_third_of_its_json(tracks: int, artists: int, budget: int) -> None:
    """issue 20's byte budget: the URIs dominated the state (~1.9 KiB for 22 tracks)."""
    state = realistic_state(tracks, artists)
    assert len(state.encode()) <= budget <= len(state.to_json()) / 2.6


def test_a_state_in_the_json_form_is_still_read() -> None:
    """a rolling deploy: workers of the previous release still write bare JSON."""
    state = realistic_state(5, 2)
    assert PlaylistState.decode(state.to_json()) == state
    assert PlaylistState.decode(state.to_json().decode()) == state


def test_a_rev_the_header_cannot_hold_is_stored_as_json() -> None:
    state = PlaylistState("cid", "f", [1], ["at://a"], "3m\n6", "did:plc:owner")
    assert state.encode() == state.to_json()
    assert PlaylistState.decode(state.encode()) == state


def _deflated(document: bytes) -> bytes:
    from engine.state_codec import DICTIONARY

    compressor = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zdict=DICTIONARY)
    return compressor.compress(document) + compressor.flush()


@pytest.mark.parametrize(
    "raw",
    [
        TAG + b"3m6",  # no end of header
        TAG + b"3m6\n" + b"not deflate at all",
        realistic_state(4, 2).encode()[:-8],  # truncated
        TAG + b"3m7\n" + realistic_state(4, 2).encode().split(b"\n", 1)[1],  # revs disagree
        TAG + b"3m6\n" + _deflated(b"[1, 2]"),  # not a state
        TAG + b"\xff\n" + _deflated(b"{}"),  # a rev that is not text
        TAG + b"3m6\n" + _deflated(b" " * (MAX_DOCUMENT_BYTES + 1)),  # inflates too far
    ],
)
def test_a_corrupt_packed_state_is_a_format_error(raw: bytes) -> None:
    with pytest.raises(CacheFormatError):
        PlaylistState.decode(raw)
