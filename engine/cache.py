"""the cache contract: what the worker writes and the API reads (DESIGN.md, "The cache").

    plyr:recommendations:{playlist_id}:{token}    the answer for one version of a playlist
    plyr:recommendations-tokens:{playlist_id}     the tokens cached for it (a sorted set,
                                                  scored by expiry; the previous release's
                                                  `-versions` set is still read by a forget)
    plyr:recommendations-state:{playlist_id}      the last computed version (cid, fingerprint,
                                                  track ids, owner): how a reorder or rename
                                                  is recognised and served without a
                                                  recompute, and what the API serves its
                                                  owner while plyr.fm's database is down

`token` is the list record's CID, or for a private playlist (no record) its
`updated_at` in ISO form, as plyr.fm does today. every key lives the cache TTL:
the setting CACHE_TTL_SECONDS, whose default is `CACHE_TTL_SECONDS` here (24 h).
this module is pure: keys, payloads and fingerprints; Redis I/O lives with
the worker and the API.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import orjson

from engine import state_codec
from engine.keys import RECOMMENDATIONS_PREFIX, STATE_PREFIX, TOKENS_PREFIX, VERSIONS_PREFIX
from engine.types import MAX_BECAUSE_TITLE, Because, Track

CACHE_PREFIX = RECOMMENDATIONS_PREFIX
CACHE_TTL = timedelta(hours=24)
CACHE_TTL_SECONDS = int(CACHE_TTL.total_seconds())
ANSWER_TRACKS = 10  # the most an answer shows (the API's `limit` is 1..10)
# the next ones, for "more" (the API's `offset` is 0..20), so asking is a read too
MORE_TRACKS = 20
# kept beyond them, so that an answer a withdrawn track is filtered out of still
# fills `limit` until its playlist is recomputed (DESIGN.md, "The cache").
SPARE_TRACKS = 5
MAX_CACHED_TRACKS = ANSWER_TRACKS + MORE_TRACKS + SPARE_TRACKS
MAX_TOKEN_LENGTH = 200  # a CID is ~60 characters; an ISO timestamp ~32
MAX_PAYLOAD_BYTES = 192 * 1024  # 30 tracks of ~500 bytes is ~15 KiB: room for long titles


class CacheFormatError(ValueError):
    """a cached value that does not follow this contract (treated as a miss)."""


def cache_key(playlist_id: str, token: str) -> str:
    """the key of one version of a playlist's recommendations."""
    if not playlist_id or not token or len(token) > MAX_TOKEN_LENGTH:
        raise ValueError("cache_key needs a playlist id and a bounded version token")
    return f"{CACHE_PREFIX}:{playlist_id}:{token}"


def cache_key_pattern(playlist_id: str) -> str:
    """a SCAN pattern matching every version of one playlist (tools and tests)."""
    escaped = "".join(f"\\{c}" if c in "*?[]\\" else c for c in playlist_id)
    return f"{CACHE_PREFIX}:{escaped}:*"


def state_key(playlist_id: str) -> str:
    return f"{STATE_PREFIX}:{playlist_id}"


def tokens_key(playlist_id: str) -> str:
    """the version tokens cached for a playlist, each scored by its entry's expiry
    (whole seconds): what a delete must remove, found without scanning the keyspace."""
    return f"{TOKENS_PREFIX}:{playlist_id}"


def versions_key(playlist_id: str) -> str:
    """the previous release's set of a playlist's version tokens (a set of strings):
    a forget still reads it, nothing writes it."""
    return f"{VERSIONS_PREFIX}:{playlist_id}"


def private_token(updated_at: datetime) -> str:
    """the version token of a private playlist: its `updated_at`, ISO 8601."""
    return updated_at.isoformat()


def fingerprint(track_ids: Iterable[int]) -> str:
    """a digest of the *set* of tracks: a reorder or a rename leaves it unchanged."""
    ordered = sorted(set(track_ids))
    digest = hashlib.blake2b(",".join(map(str, ordered)).encode(), digest_size=16)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Ranked:
    """a track an entry keeps by id only, past the ones it keeps whole: the id and the
    playlist track that explains it (`Because.id`), hydrated when a reader reaches it."""

    id: int
    because: int | None = None


@dataclass(frozen=True, slots=True)
class CachedRecommendations:
    """the cached value: the API's response (`tracks`, `available`) plus provenance.

    `tracks` are whole (the API's five fields, and `because`), best first; `more` are
    the ranks after them, by id only (`Ranked`). a computed value holds every rank
    whole; the stored form keeps the first `ANSWER_TRACKS` whole, as DESIGN.md's
    contract reads ("tracks": up to 10), and the rest as ids: 35 whole tracks were
    three quarters of a cached playlist's bytes in Redis, and the ranks past 10 are
    read only by "more" past the first page and by a withdrawal's gap, both of which
    hydrate them from plyr.fm's database (`with_more`), eligibility applied.
    """

    tracks: list[Track]
    available: bool
    strategy: str = ""
    fingerprint: str = ""
    computed_at: str = ""
    more: tuple[Ranked, ...] = ()

    def ids(self) -> list[int]:
        """every rank's track id, best first (whole tracks, then `more`)."""
        return [track.id for track in self.tracks] + [ranked.id for ranked in self.more]

    def stored_whole(self) -> list[Track]:
        """the tracks the stored form keeps whole: the ones a withdrawal must find
        (`worker.store.withdrawn` indexes them)."""
        return self.tracks[:ANSWER_TRACKS]

    def reaches_past_whole(self, limit: int, offset: int = 0) -> bool:
        """whether an answer of `limit` from `offset` needs ranks kept by id only."""
        return bool(self.more) and offset + limit > len(self.tracks)

    def to_hydrate(self) -> list[int]:
        """the ids `with_more` needs hydrated: the ranks of `more` and the playlist
        tracks that explain them, each once."""
        wanted = [ranked.id for ranked in self.more]
        wanted += [ranked.because for ranked in self.more if ranked.because is not None]
        return list(dict.fromkeys(wanted))

    def with_more(self, hydrated: Mapping[int, Track]) -> CachedRecommendations:
        """every rank whole, from `hydrated` (plyr.fm's eligible tracks by id: the
        ranks of `more` and the playlist tracks that explain them). a rank absent from
        it is no longer eligible and is left out; an explanation absent from it
        explains nothing (as when computed: `engine.recommend`)."""
        if not self.more:
            return self
        whole = list(self.tracks)
        for ranked in self.more:
            track = hydrated.get(ranked.id)
            if track is None:
                continue
            reason = hydrated.get(ranked.because) if ranked.because is not None else None
            whole.append(
                replace(
                    track,
                    because=None
                    if reason is None
                    else Because(reason.id, reason.title[:MAX_BECAUSE_TITLE]),
                )
            )
        return replace(self, tracks=whole, more=())

    def to_json(self) -> bytes:
        whole = self.stored_whole()
        rest = [_ranked(track) for track in self.tracks[len(whole) :]] + list(self.more)
        document: dict[str, object] = {
            "tracks": [track.as_json() for track in whole],
            "available": self.available,
            "strategy": self.strategy,
            "fingerprint": self.fingerprint,
            "computed_at": self.computed_at,
        }
        if rest:
            document["more"] = [
                [ranked.id] if ranked.because is None else [ranked.id, ranked.because]
                for ranked in rest[: MAX_CACHED_TRACKS - len(whole)]
            ]
        return orjson.dumps(document)

    def response(self, limit: int, offset: int = 0) -> dict[str, object]:
        """the API's answer: `limit` tracks from the `offset`-th on, and availability
        (of the whole tracks: `with_more` first when `reaches_past_whole`)."""
        return {
            "tracks": [track.as_json() for track in self.tracks[offset : offset + limit]],
            "available": self.available,
        }

    @classmethod
    def from_json(cls, raw: bytes | str) -> CachedRecommendations:
        if len(raw) > MAX_PAYLOAD_BYTES:
            raise CacheFormatError("cached payload too large")
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise CacheFormatError(f"cached payload is not JSON: {error}") from error
        return cls.from_value(data)

    @classmethod
    def from_value(cls, data: object) -> CachedRecommendations:
        """the value from its decoded JSON (when it came inside another document)."""
        if not isinstance(data, dict):
            raise CacheFormatError("cached payload is not an object")
        available = data.get("available")
        raw_tracks = data.get("tracks")
        if not isinstance(available, bool) or not isinstance(raw_tracks, list):
            raise CacheFormatError("cached payload lacks `tracks` or `available`")
        tracks = [_track(item) for item in raw_tracks[:MAX_CACHED_TRACKS]]
        # absent in entries written before the ranks past 10 were kept by id
        raw_more = data.get("more", [])
        if not isinstance(raw_more, list):
            raise CacheFormatError("cached `more` is not a list")
        more = tuple(_ranked_item(item) for item in raw_more[: MAX_CACHED_TRACKS - len(tracks)])
        return cls(
            tracks=tracks,
            available=available,
            strategy=_text(data.get("strategy")),
            fingerprint=_text(data.get("fingerprint")),
            computed_at=_text(data.get("computed_at")),
            more=more,
        )


@dataclass(frozen=True, slots=True)
class PlaylistState:
    """the last computed version of a playlist, kept beside its cache entries."""

    token: str
    fingerprint: str
    track_ids: list[int] = field(default_factory=list)
    track_uris: list[str] = field(default_factory=list)
    rev: str = ""
    owner_did: str = ""  # whose playlist (a playlist never changes hands); "" unknown

    def encode(self) -> bytes:
        """the stored form (`engine.state_codec`): the JSON deflated behind its rev."""
        if not state_codec.packable(self.rev):
            return self.to_json()  # never a TID; still a state every reader reads
        return state_codec.pack(self.rev, self.to_json())

    @classmethod
    def decode(cls, raw: bytes | str) -> PlaylistState:
        """a stored state, packed or in the JSON form written before packing."""
        if not state_codec.is_packed(raw):
            return cls.from_json(raw)
        assert isinstance(raw, bytes)  # is_packed says so
        try:
            rev, document = state_codec.unpack(raw)
        except state_codec.StateCodecError as error:
            raise CacheFormatError(str(error)) from error
        state = cls.from_json(document)
        if state.rev != rev:  # the script decides on the header's: they must agree
            raise CacheFormatError("packed state's header and document disagree on the rev")
        return state

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "token": self.token,
                "fingerprint": self.fingerprint,
                "track_ids": self.track_ids,
                "track_uris": self.track_uris,
                "rev": self.rev,
                "owner_did": self.owner_did,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> PlaylistState:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise CacheFormatError(f"playlist state is not JSON: {error}") from error
        if not isinstance(data, dict):
            raise CacheFormatError("playlist state is not an object")
        track_ids = data.get("track_ids", [])
        track_uris = data.get("track_uris", [])
        if not isinstance(track_ids, list) or not all(
            isinstance(t, int) and not isinstance(t, bool) for t in track_ids
        ):
            raise CacheFormatError("playlist state has bad track ids")
        if not isinstance(track_uris, list) or not all(isinstance(u, str) for u in track_uris):
            raise CacheFormatError("playlist state has bad track uris")
        return cls(
            token=_text(data.get("token")),
            fingerprint=_text(data.get("fingerprint")),
            track_ids=track_ids,
            track_uris=track_uris,
            rev=_text(data.get("rev")),
            owner_did=_text(data.get("owner_did")),
        )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _track(item: Any) -> Track:
    if not isinstance(item, dict):
        raise CacheFormatError("cached track is not an object")
    track_id = item.get("id")
    title = item.get("title")
    handle = item.get("artist_handle")
    display = item.get("artist_display_name")
    image = item.get("image_url")
    if (
        not isinstance(track_id, int)
        or isinstance(track_id, bool)
        or not isinstance(title, str)
        or not isinstance(handle, str)
        or not isinstance(display, str)
        or not (image is None or isinstance(image, str))
    ):
        raise CacheFormatError("cached track has missing or mistyped fields")
    return Track(track_id, title, handle, display, image, _because(item.get("because")))


def _ranked(track: Track) -> Ranked:
    return Ranked(track.id, None if track.because is None else track.because.id)


def _ranked_item(item: Any) -> Ranked:
    """one rank of a cached `more`: `[id]` or `[id, the id that explains it]`."""
    if (
        not isinstance(item, list)
        or not 1 <= len(item) <= 2
        or not all(isinstance(part, int) and not isinstance(part, bool) for part in item)
    ):
        raise CacheFormatError("cached `more` holds something other than [id] or [id, id]")
    return Ranked(item[0], item[1] if len(item) == 2 else None)


def _because(raw: Any) -> Because | None:
    """a cached track's explanation; absent in entries written before it existed."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise CacheFormatError("cached `because` is not an object")
    track_id, title = raw.get("id"), raw.get("title")
    if (
        not isinstance(track_id, int)
        or isinstance(track_id, bool)
        or not isinstance(title, str)
        or len(title) > MAX_BECAUSE_TITLE
    ):
        raise CacheFormatError("cached `because` has missing or mistyped fields")
    return Because(track_id, title)
