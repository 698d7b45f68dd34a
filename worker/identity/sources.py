"""the source a stranger-named host is budgeted under: its registrable domain.

per-source bounds (name lookups, did:web fetches) keep one domain that answers
slowly from taking what everyone needs. the source was a name's last two labels,
so two tokens naming a silent `*.evil.co.uk` host refused 30 of 45 `*.co.uk` users
for 45 s (issue 23). the registrable domain comes from the public suffix list,
private suffixes included (`x.github.io` is its own source), as the
`publicsuffixlist` package bundles it: read from the package, never fetched at run
time; a release of the package brings a newer list.
"""

from __future__ import annotations

from functools import lru_cache

from publicsuffixlist import PublicSuffixList


@lru_cache(maxsize=1)
def _suffixes() -> PublicSuffixList:
    return PublicSuffixList()  # the bundled list (~10 ms to read), once per process


def source_of(host: str) -> str:
    """`a.b.evil.co.uk` -> `evil.co.uk`; a public suffix or a bare name is its own source."""
    name = host.lower().rstrip(".")
    registrable: str | None = _suffixes().privatesuffix(name)
    return registrable or name
