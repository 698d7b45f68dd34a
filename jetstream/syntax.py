"""the AT Protocol identifier syntax a frame must respect before anything trusts it.

everything in a Jetstream frame comes from anyone on the network. these patterns
are deliberately strict: they end up in Redis keys, docket task arguments and
log lines, so a value that is not a well-formed identifier never gets that far.
"""

from __future__ import annotations

import re
from typing import Final

# atproto accepts two DID methods only: did:plc (24 base32 characters) and did:web
# (a hostname; `%3A<port>` is tolerated for local development). nothing else can
# own a repo, so nothing else can own a playlist.
PLC_DID = r"did:plc:[a-z2-7]{24}"
DID = rf"(?:{PLC_DID}|did:web:[a-zA-Z0-9.-]{{1,253}}(?:%3A[0-9]{{1,5}})?)"

# record keys: 1-512 characters of a small alphabet; "." and ".." are reserved
# (and a slash can never appear, so "../../etc" is not a key).
RKEY = r"(?!\.{1,2}$)[A-Za-z0-9._~:-]{1,512}"

# a TID: 13 characters of sortable base32, first one limited so the top bit is 0.
# equal-length sortable base32 compares correctly as plain strings, which is what
# the rev guard relies on.
TID = r"[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}"

# base32-sortable: the TID alphabet. equal-length strings sort like the integers.
SORTABLE_BASE32: Final = "234567abcdefghijklmnopqrstuvwxyz"
TID_LENGTH: Final = 13
# a TID is 64 bits, top bit 0: 53 bits of unix microseconds, 10 bits of clock id.
MAX_TID_MICROS: Final = 2**53 - 1
MAX_CLOCK_ID: Final = 2**10 - 1

# a CIDv1 in its JSON form: multibase "b" (base32 lower case). the bound is far
# above any real CID (sha-256 CIDs are 59 characters).
CID = r"b[a-z2-7]{8,127}"

# a collection NSID, bounded (settings validate LIST_COLLECTION and friends with it).
NSID = r"[a-zA-Z][a-zA-Z0-9-]{0,62}(?:\.[a-zA-Z0-9-]{1,63}){2,}"

DID_RE = re.compile(DID)
RKEY_RE = re.compile(RKEY)
TID_RE = re.compile(TID)
CID_RE = re.compile(CID)
NSID_RE = re.compile(NSID)

# NSIDs are at most 317 characters by the spec; a longer "collection" is garbage.
MAX_NSID_LENGTH = 317


def is_did(value: str) -> bool:
    return DID_RE.fullmatch(value) is not None


def is_rkey(value: str) -> bool:
    return RKEY_RE.fullmatch(value) is not None


def is_tid(value: str) -> bool:
    return TID_RE.fullmatch(value) is not None


def is_cid(value: str) -> bool:
    return CID_RE.fullmatch(value) is not None


def is_nsid(value: str) -> bool:
    return len(value) <= MAX_NSID_LENGTH and NSID_RE.fullmatch(value) is not None


def record_uri_pattern(collection: str) -> re.Pattern[str]:
    """`at://<did>/<collection>/<rkey>` for one exact collection (a list item's subject)."""
    return re.compile(rf"at://{DID}/{re.escape(collection)}/{RKEY}")


def record_uri(did: str, collection: str, rkey: str) -> str:
    """the at:// URI of a record, built from parts that were validated separately."""
    return f"at://{did}/{collection}/{rkey}"


def tid(time_us: int, clock_id: int = 0) -> str:
    """the TID of a moment (unix microseconds) from one clock: a rev or a record key."""
    if not 0 <= time_us <= MAX_TID_MICROS or not 0 <= clock_id <= MAX_CLOCK_ID:
        raise ValueError(f"no TID for time_us={time_us}, clock_id={clock_id}")
    value = (time_us << 10) | clock_id
    return "".join(SORTABLE_BASE32[(value >> (5 * i)) & 31] for i in range(TID_LENGTH - 1, -1, -1))
