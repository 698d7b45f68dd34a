"""the playlist state's stored form: its JSON document deflated behind a header
that carries the rev (`PlaylistState.encode`/`decode`, `engine.cache`).

    b"z1 " + rev + b"\\n" + raw deflate (RFC 1951) of the JSON, with `DICTIONARY`

why: the state's `track_uris` (~80 characters each) made it ~2 KiB per playlist
in Redis. deflate takes the repeated `at://did:plc:` / `/fm.plyr.track/` and the
base32 alphabet's slack out; a 22-track state of 15 artists goes from ~1,860 to
~580 bytes. the rev stays readable in front because the cache write's Lua script
compares it (`worker.store.cache.WRITE`) and Lua has no inflate.

a state written before this form (a bare JSON object, first byte `{`) is still
read: a rolling deploy has both writers. `DICTIONARY` is part of the format:
changing it needs a new tag.
"""

from __future__ import annotations

import zlib
from typing import Final

TAG: Final = b"z1 "
# strings most states repeat, the likeliest last (deflate finds near matches cheaper)
DICTIONARY: Final = (
    b'"owner_did":"did:plc:","rev":"3m","track_uris":["at://did:plc:/fm.plyr.track/3l",'
    b'"at://did:plc:/fm.plyr.track/3m","track_ids":[,"fingerprint":"{"token":"bafyrei'
)
# a state's document is bounded by what a version may hold (a few thousand URIs):
# inflating stops here, so a corrupt or hostile value cannot balloon in memory
MAX_DOCUMENT_BYTES: Final = 4 * 1024 * 1024
_WBITS: Final = -15  # raw deflate: no zlib header or checksum (6 bytes a state)


class StateCodecError(ValueError):
    """a stored state in this form that cannot be unpacked."""


def packable(rev: str) -> bool:
    """whether `rev` fits the header (a TID always does)."""
    return "\n" not in rev


def pack(rev: str, document: bytes) -> bytes:
    """the stored form of a state's JSON `document` whose rev is `rev`."""
    if not packable(rev):
        raise ValueError("a packed state's rev cannot hold a newline")
    # level 6 with the default memory: ~27 us a state; 9 with the most memory saved ~20
    # bytes for ~165 us, a write's worth of CPU (its tables are set up per call)
    compressor = zlib.compressobj(6, zlib.DEFLATED, _WBITS, 8, zdict=DICTIONARY)
    return TAG + rev.encode() + b"\n" + compressor.compress(document) + compressor.flush()


def is_packed(raw: bytes | str) -> bool:
    return isinstance(raw, bytes) and raw.startswith(TAG)


def unpack(raw: bytes) -> tuple[str, bytes]:
    """(the header's rev, the JSON document) of a packed state."""
    end = raw.find(b"\n", len(TAG))
    if end < 0:
        raise StateCodecError("packed state has no end of header")
    try:
        rev = raw[len(TAG) : end].decode()
        inflater = zlib.decompressobj(_WBITS, zdict=DICTIONARY)
        document = inflater.decompress(raw[end + 1 :], MAX_DOCUMENT_BYTES)
    except (UnicodeDecodeError, zlib.error) as error:
        raise StateCodecError(f"packed state does not inflate: {error}") from error
    if inflater.unconsumed_tail:
        raise StateCodecError(f"packed state inflates past {MAX_DOCUMENT_BYTES} bytes")
    if not inflater.eof:
        raise StateCodecError("packed state is truncated")
    return rev, document
