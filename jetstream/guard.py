"""the rev/CID guard: a playlist change is worth work only if it is newer than the last one.

Jetstream delivers at least once, with no ordering across repos: a rewound
cursor replays what we already handled, a host rotation replays more, and an
old commit can arrive after a newer one. `rev` is a TID, monotonic per repo,
and a playlist URI names one repo, so "is this rev newer than the last accepted
rev of this playlist" is the whole rule. a newer rev with the same CID is the
same record bytes (a no-op rewrite) and costs nothing either.

the state lives in Redis, one key per playlist with a TTL longer than any replay
window (Jetstream keeps about a day of events; the default TTL is a week). it is
read before the enqueue and written only after the enqueue succeeded, so a
crash in between replays the change rather than losing it; the docket key makes
that replay harmless.

no Lua here: the embedded mode runs this against fakeredis, which has no Lua
engine. plain MGET and SET suffice because exactly one consumer runs (see
DESIGN.md, "Processes") and it judges changes in order.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import redis.asyncio as aioredis

from jetstream.events import ListChange, ListCommit, SkipReason
from jetstream.keys import JetstreamKeys
from jetstream.syntax import is_tid


@dataclass(frozen=True, slots=True)
class GuardState:
    """the last accepted change of a playlist; `cid` is None after a delete."""

    rev: str
    cid: str | None

    def encode(self) -> bytes:
        return f"{self.rev} {self.cid or ''}".encode()

    @classmethod
    def decode(cls, raw: bytes | str) -> GuardState | None:
        """None for anything we did not write (the change is then judged as new)."""
        try:
            text = raw.decode("ascii") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError:
            return None
        rev, _, cid = text.partition(" ")
        if not is_tid(rev):
            return None
        return cls(rev, cid or None)

    @classmethod
    def of(cls, change: ListChange) -> GuardState:
        return cls(change.rev, change.cid if isinstance(change, ListCommit) else None)


def judge(previous: GuardState | None, change: ListChange) -> SkipReason | None:
    """None when `change` should be enqueued; otherwise why it costs nothing.

    TIDs are fixed-length sortable base32, so string order is time order.
    """
    if previous is None:
        return None
    if change.rev == previous.rev:
        return SkipReason.DUPLICATE
    if change.rev < previous.rev:
        return SkipReason.STALE_REV
    if isinstance(change, ListCommit) and change.cid == previous.cid:
        return SkipReason.SAME_CID
    return None


class RevGuard:
    """reads and records the last accepted (rev, cid) per playlist URI."""

    def __init__(self, redis: aioredis.Redis, keys: JetstreamKeys, ttl_seconds: int) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl_seconds = ttl_seconds

    async def load(self, playlist_uris: Collection[str]) -> dict[str, GuardState]:
        """the known state of each playlist, in one round trip."""
        if not playlist_uris:
            return {}
        ordered = list(playlist_uris)
        raw_states = await self._redis.mget([self._keys.rev(uri) for uri in ordered])
        states: dict[str, GuardState] = {}
        for uri, raw in zip(ordered, raw_states, strict=True):
            state = GuardState.decode(raw) if raw is not None else None
            if state is not None:
                states[uri] = state
        return states

    async def record(self, states: Mapping[str, GuardState]) -> None:
        """remember accepted changes (pipelined; each key gets the TTL afresh)."""
        if not states:
            return
        async with self._redis.pipeline(transaction=False) as pipeline:
            for uri, state in states.items():
                pipeline.set(self._keys.rev(uri), state.encode(), ex=self._ttl_seconds)
            await pipeline.execute()
