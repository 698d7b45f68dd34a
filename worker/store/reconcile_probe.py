"""the reconcile pass's Redis reads and writes (the pass itself decides, this stores).

per page of plyr.fm's playlists, one pipelined round trip reads what Redis says
of each one's current version: the remaining life of its cache entry, whether
the API saw it viewed lately, whether an expiry of this very version was let
happen (inactive), whether its PDS said this very version's record is deleted, and
the version the Jetstream consumer last accepted for its record. the pass then
marks what it lets lapse, what it found deleted and what it healed as active.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from engine.cache import cache_key
from engine.keys import GONE_PREFIX, LAPSED_PREFIX
from jetstream.guard import GuardState
from jetstream.keys import JetstreamKeys
from worker.store.activity import activity_key

MISSING: Final = -2  # what PTTL answers for a key that does not exist
# a deleted record is asked about again after a day (a PDS that answered "not found"
# by mistake costs that version a day of precomputing; the API still answers it)
GONE_TTL_SECONDS: Final = 86_400


@dataclass(frozen=True, slots=True)
class Wanted:
    """one playlist to probe: its id, the token of its current version, its record."""

    playlist_id: str
    token: str | None
    record_uri: str | None


@dataclass(frozen=True, slots=True)
class Probe:
    """what Redis says of one playlist's current version."""

    entry_ttl_ms: int  # PTTL of the entry: MISSING, or milliseconds left (-1: no TTL)
    viewed: bool  # an activity key exists (the API served it recently)
    lapsed_token: str | None  # the version last let lapse, if any
    firehose_cid: str | None  # the CID the consumer last accepted for the record
    firehose_rev: str | None = None  # and its rev
    gone_token: str | None = None  # the version whose record its PDS said is deleted


async def probe(redis: Any, keys: JetstreamKeys, wanted: Sequence[Wanted]) -> list[Probe]:
    """every playlist's read in one pipelined round trip (five reads each)."""
    async with redis.pipeline(transaction=False) as pipe:
        for one in wanted:
            pipe.pttl(cache_key(one.playlist_id, one.token or "-"))
            pipe.exists(activity_key(one.playlist_id))
            pipe.get(f"{LAPSED_PREFIX}:{one.playlist_id}")
            pipe.get(keys.rev(one.record_uri or "-"))
            pipe.get(f"{GONE_PREFIX}:{one.playlist_id}")
        answers = await pipe.execute()
    probes = []
    for index in range(len(wanted)):
        ttl, viewed, lapsed, guard, gone = answers[index * 5 : index * 5 + 5]
        accepted = GuardState.decode(guard) if guard is not None else None
        probes.append(
            Probe(
                entry_ttl_ms=int(ttl) if isinstance(ttl, int) else MISSING,
                viewed=bool(viewed),
                lapsed_token=_text(lapsed),
                firehose_cid=accepted.cid if accepted is not None else None,
                firehose_rev=accepted.rev if accepted is not None else None,
                gone_token=_text(gone),
            )
        )
    return probes


async def mark_lapsing(
    redis: Any, versions: Iterable[tuple[str, str]], *, ttl_seconds: int
) -> None:
    """remember which version of each playlist was let expire (inactive)."""
    async with redis.pipeline(transaction=False) as pipe:
        for playlist_id, token in versions:
            pipe.set(f"{LAPSED_PREFIX}:{playlist_id}", token, ex=ttl_seconds)
        await pipe.execute()


async def mark_gone(redis: Any, versions: Iterable[tuple[str, str]]) -> None:
    """remember which version of each playlist its PDS said is deleted."""
    async with redis.pipeline(transaction=False) as pipe:
        for playlist_id, token in versions:
            pipe.set(f"{GONE_PREFIX}:{playlist_id}", token, ex=GONE_TTL_SECONDS)
        await pipe.execute()


async def mark_active(redis: Any, playlist_ids: Iterable[str], *, ttl_seconds: int) -> None:
    """a healed edit is an edit: the playlist counts as active, as if viewed."""
    async with redis.pipeline(transaction=False) as pipe:
        for playlist_id in playlist_ids:
            pipe.set(activity_key(playlist_id), b"1", ex=ttl_seconds)
        await pipe.execute()


def _text(raw: object) -> str | None:
    if isinstance(raw, bytes):
        try:
            return raw.decode()
        except UnicodeDecodeError:
            return None
    return raw if isinstance(raw, str) else None
