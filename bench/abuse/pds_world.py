"""the owners' PDSes of `python -m bench abuse`'s API table, named the same way by the
server (its catalog), the report (the records it serves) and the attacks (what they
ask for), so none has to send the others a list.

three kinds of account beside the warm playlists:
- legitimate owners whose playlists are not cached yet (`cold_playlist`): the moment
  after "+", when the editor asks again and the API reads the record from the owner's
  PDS and computes inline. each is asked once, so each is a real miss;
- the attacker's account whose PDS answers hostile records (finding 1): too large
  (~0.8 MB), too many items, too complex;
- accounts on a PDS that never answers (finding 5), asking for their own playlists.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Final

from bench.api_server import REGIONS, TRACKS, track_uri

COLD_PLAYLISTS: Final = 1_000
COLD_OWNERS: Final = 50  # a person looks at one playlist at a time: owners are many
COLD_TRACKS: Final = 12
HOSTILE_KINDS: Final = ("too_large", "too_many_items", "too_complex")
HANGING_ACCOUNTS: Final = 8
HANGING_PLAYLISTS: Final = 400  # distinct misses, spread over the hanging accounts
_BASE32: Final = "abcdefghijklmnopqrstuvwxyz234567"


@dataclass(frozen=True, slots=True)
class PdsPlaylist:
    playlist_id: str
    owner_did: str
    record_uri: str
    cid: str
    track_uris: tuple[str, ...]


def _plc(label: str) -> str:
    digest = hashlib.sha256(label.encode()).digest()
    return "did:plc:" + "".join(_BASE32[byte % 32] for byte in digest[:24])


def _uuid(label: str) -> str:
    h = hashlib.sha256(label.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"


def _cid(label: str) -> str:
    digest = hashlib.sha256(label.encode()).digest()
    return "bafyrei" + "".join(_BASE32[byte % 32] for byte in digest[:26]) + "a" * 26


def _playlist(kind: str, index: int, owner: str, tracks: tuple[str, ...]) -> PdsPlaylist:
    label = f"{kind} {index}"
    rkey = f"3{kind.replace('_', '')[:9]}{index:06d}"
    return PdsPlaylist(
        _uuid(label), owner, f"at://{owner}/fm.plyr.list/{rkey}", _cid(label), tracks
    )


def cold_playlist(index: int) -> PdsPlaylist:
    """a legitimate playlist nobody has asked for yet: 12 tracks of one region."""
    region = index % REGIONS
    tracks = tuple(
        track_uri((region + REGIONS * (index * 7 + n)) % TRACKS) for n in range(COLD_TRACKS)
    )
    return _playlist("cold", index, _plc(f"cold owner {index % COLD_OWNERS}"), tracks)


HOSTILE_OWNER: Final = _plc("hostile owner")


def hostile_playlists() -> list[PdsPlaylist]:
    return [_playlist(kind, 0, HOSTILE_OWNER, ()) for kind in HOSTILE_KINDS]


def hostile_value(kind: str) -> dict[str, Any]:
    """the record a hostile PDS answers for `kind` (tests/test_pds_answers.py's shapes)."""
    if kind == "too_complex":  # ~300 KB of `[],`: cheap to send, costly to build
        return {"$type": "fm.plyr.list", "items": [[] for _ in range(100_000)]}
    count = 9_000 if kind == "too_large" else 501  # ~0.8 MB / one item past the bound
    items = [{"subject": {"uri": track_uri(n % 500), "cid": "bafyreitrack"}} for n in range(count)]
    return {
        "$type": "fm.plyr.list",
        "name": "hostile",
        "listType": "playlist",
        "items": items,
        "createdAt": "2026-01-01T00:00:00.000Z",
    }


def hanging_owner(index: int) -> str:
    return _plc(f"hanging owner {index % HANGING_ACCOUNTS}")


def hanging_playlist(index: int) -> PdsPlaylist:
    return _playlist("hang", index, hanging_owner(index), ())
