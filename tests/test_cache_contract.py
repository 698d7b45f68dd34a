"""the cache contract: keys, payload, fingerprint."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from engine.cache import (
    CACHE_TTL_SECONDS,
    MAX_CACHED_TRACKS,
    CachedRecommendations,
    CacheFormatError,
    PlaylistState,
    cache_key,
    cache_key_pattern,
    fingerprint,
    private_token,
    state_key,
)
from engine.types import Track


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
    decoded = CachedRecommendations.from_json(value.to_json())
    assert len(decoded.tracks) == MAX_CACHED_TRACKS == 35
    assert decoded.tracks == tracks(MAX_CACHED_TRACKS)
    # "more": the next tracks of the same answer, as far as it goes
    assert decoded.response(3, 3)["tracks"] == [t.as_json() for t in tracks(6)[3:]]
    assert decoded.response(10, 25)["tracks"] == [t.as_json() for t in tracks(35)[25:]]
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
