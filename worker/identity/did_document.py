"""bounds a DID document must fit before any of it is decoded.

a document is a stranger's JSON. the SDK decodes the `#atproto` key's
`publicKeyMultibase` with base58, whose cost grows faster than the input: a
60,000-character key took 0.24 s of the event loop, and a refused document was
fetched and decoded again on the next request (issue 16). so every field the
SDK will read is bounded first, at sizes real documents are far below; past
them the document is refused without decoding anything.
"""

from __future__ import annotations

from typing import Final

# a compressed k256/p256 Multikey is 'z' + ~48 base58 characters; 128 leaves
# room for any curve atproto might add and keeps base58 decoding trivial.
MAX_MULTIBASE_LENGTH: Final = 128
# ids, types, controllers, handles and endpoints: a URL-sized string.
MAX_STRING_LENGTH: Final = 2048
# a PLC document has one verification method, one handle and one service;
# a did:web one a few more at most.
MAX_ENTRIES: Final = 16


def document_problem(document: dict[str, object]) -> str | None:
    """why `document` is refused before decoding (a short fixed word), or None."""
    for name in ("id", "@context"):
        value = document.get(name)
        if isinstance(value, str) and len(value) > MAX_STRING_LENGTH:
            return "oversized_field"
    for name in ("alsoKnownAs", "verificationMethod", "service", "@context", "controller"):
        entries = document.get(name)
        if isinstance(entries, list):
            if len(entries) > MAX_ENTRIES:
                return "too_many_entries"
            if any(_oversized(entry) for entry in entries):
                return "oversized_field"
    return None


def _oversized(entry: object) -> bool:
    if isinstance(entry, str):
        return len(entry) > MAX_STRING_LENGTH
    if not isinstance(entry, dict):
        return False
    for key, value in entry.items():
        limit = MAX_MULTIBASE_LENGTH if key == "publicKeyMultibase" else MAX_STRING_LENGTH
        if isinstance(value, str) and len(value) > limit:
            return True
        if isinstance(value, list | dict) and len(value) > MAX_ENTRIES:
            return True
        if isinstance(value, list) and any(
            not isinstance(item, str) or len(item) > MAX_STRING_LENGTH for item in value
        ):
            return True
        if isinstance(value, dict) and any(
            # one level of map (a service endpoint may be one), of plain values only
            isinstance(item, list | dict) or (isinstance(item, str) and len(item) > limit)
            for item in value.values()
        ):
            return True
    return False
