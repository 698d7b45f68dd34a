"""AT Protocol-shaped identifiers for the demo: DIDs, TIDs, CIDs, playlist ids.

the demo's data must pass the consumer's strict syntax checks
(`jetstream.syntax`) and look like the real thing in logs, so these follow the
real encodings; only the content behind them is made up. every function is
pure and deterministic: the same input always gives the same identifier.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Mapping
from typing import Final

import numpy as np
import numpy.typing as npt
import orjson

from jetstream.syntax import MAX_CLOCK_ID, MAX_TID_MICROS, SORTABLE_BASE32, TID_LENGTH

# CIDv1, dag-cbor codec (0x71), sha2-256 multihash (0x12, 32 bytes): the prefix
# every record CID on the network has; base32 of it is what makes "bafyrei...".
_CID_PREFIX: Final = bytes([0x01, 0x71, 0x12, 0x20])

_ALPHABET_BYTES = np.frombuffer(SORTABLE_BASE32.encode(), dtype=np.uint8)
# multibase "b": RFC 4648 base32, lower case, no padding
_BASE32_BYTES = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz234567", dtype=np.uint8)
_FIVE_BITS = np.array([16, 8, 4, 2, 1], dtype=np.uint8)
_TID_SHIFTS = np.arange(TID_LENGTH - 1, -1, -1, dtype=np.uint64) * np.uint64(5)


def tids(times_us: npt.NDArray[np.int64], clock_id: int = 0) -> npt.NDArray[np.str_]:
    """`tid` over an array, vectorised (the catalogue has tens of thousands of track rkeys)."""
    if len(times_us) and (times_us.min() < 0 or times_us.max() > MAX_TID_MICROS):
        raise ValueError("time_us out of the TID range")
    if not 0 <= clock_id <= MAX_CLOCK_ID:
        raise ValueError(f"clock_id {clock_id} out of range")
    values = (times_us.astype(np.uint64) << np.uint64(10)) | np.uint64(clock_id)
    digits = (values[:, None] >> _TID_SHIFTS[None, :]) & np.uint64(31)
    characters = np.ascontiguousarray(_ALPHABET_BYTES[digits])
    return characters.view(f"S{TID_LENGTH}").ravel().astype(f"U{TID_LENGTH}")


def did_plc(seed: int, label: str) -> str:
    """a did:plc (24 characters of base32) named by a seed and a label.

    a real did:plc is the truncated hash of its genesis operation; hashing our
    own (seed, label) gives the same shape and keeps each DID stable per seed.
    """
    digest = hashlib.sha256(f"plyr-recs demo {seed} {label}".encode()).digest()
    return "did:plc:" + base64.b32encode(digest).decode("ascii")[:24].lower()


def cid_for_bytes(content: bytes) -> str:
    """a CIDv1 (dag-cbor, sha2-256) over `content`, in its base32 JSON form."""
    digest = hashlib.sha256(content).digest()
    return "b" + base64.b32encode(_CID_PREFIX + digest).decode("ascii").lower().rstrip("=")


def cids_for_digests(digests: npt.NDArray[np.uint8]) -> npt.NDArray[np.str_]:
    """`cid_for_bytes` for many sha2-256 digests at once, one per row of `digests`.

    vectorised base32, because `base64.b32encode` is pure Python and costs about
    half a second over a 20,000-track catalogue.
    """
    if digests.ndim != 2 or digests.shape[1] != 32:
        raise ValueError("cids_for_digests wants an (n, 32) array of sha2-256 digests")
    prefixed = np.concatenate(
        [np.broadcast_to(np.frombuffer(_CID_PREFIX, dtype=np.uint8), (len(digests), 4)), digests],
        axis=1,
    )
    bits = np.unpackbits(prefixed, axis=1)  # 288 bits: 57 whole characters and 3 bits
    padded = np.pad(bits, ((0, 0), (0, -bits.shape[1] % 5)))
    groups = padded.reshape(len(digests), -1, 5) @ _FIVE_BITS
    characters = np.ascontiguousarray(_BASE32_BYTES[groups])
    width = characters.shape[1]
    encoded = characters.view(f"S{width}").ravel().astype(f"U{width}")
    return np.char.add("b", encoded)


def record_cid(record: Mapping[str, object]) -> str:
    """the CID of a record: a hash of its canonical JSON (sorted keys).

    real CIDs hash the record's DAG-CBOR bytes; canonical JSON has the property
    that matters here: identical records give identical CIDs, and any change (a
    reorder, a rename, a new `updatedAt`) gives a new one.
    """
    return cid_for_bytes(orjson.dumps(record, option=orjson.OPT_SORT_KEYS))


def playlist_id(seed: int, playlist_uri: str) -> str:
    """plyr.fm's `playlists.id` (a UUID string) for a demo playlist, stable per seed."""
    digest = hashlib.sha256(f"plyr-recs demo {seed} {playlist_uri}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))
