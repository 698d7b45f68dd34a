"""judging a cache against a stream: what was lost, what is wrong.

the rules (the same for the reference run and every faulted run):

- a live playlist's final version must be cached, and its value must equal the
  reference run's (every field but `computed_at`). missing: its last event was
  lost. different: a wrong entry.
- a deleted playlist must have nothing left (no version, no state). anything
  left: its delete was lost.
- an intermediate version of a live playlist may be cached (debouncing decides
  which ones are computed at all), but its value must be what the engine gives
  for that version's tracks: checked against an oracle that runs the engine on
  the healthy world. a key for a CID the playlist never had is wrong.
- the playlist's state (how reorders are recognised) must name its final
  version: an older revision must never have replaced it.

each key counts once; a playlist counts as lost once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from bench.reliability.stream import SyntheticStream, Version
from engine.cache import CACHE_PREFIX, PlaylistState, cache_key, state_key
from worker.recs.recommender import Recommender

# a cached value minus its timestamp: what two correct runs must agree on
Comparable = dict[str, Any]
SCAN_BATCH = 500


def comparable(raw: bytes | str) -> Comparable:
    value = orjson.loads(raw)
    if isinstance(value, dict):
        value.pop("computed_at", None)
        return value
    return {"unreadable": value}


@dataclass
class Verdict:
    lost: list[str] = field(default_factory=list)  # playlist ids whose last event had no effect
    wrong: list[str] = field(default_factory=list)  # keys holding what they must not
    cached_versions: int = 0  # entries present, finals and intermediates

    @property
    def clean(self) -> bool:
        return not self.lost and not self.wrong


class Oracle:
    """the engine's answer for a version's tracks, computed once per track set on the
    healthy world (the answer depends on the set of tracks only)."""

    def __init__(self, recommender: Recommender) -> None:
        self._recommender = recommender
        self._answers: dict[frozenset[str], Comparable] = {}

    async def expected(self, version: Version) -> Comparable:
        track_set = frozenset(version.track_uris)
        if track_set not in self._answers:
            track_ids = await self._recommender.track_ids(version.track_uris)
            value, _ = await self._recommender.compute(track_ids)
            self._answers[track_set] = comparable(value.to_json())
        return self._answers[track_set]


async def final_entries(redis: Any, stream: SyntheticStream) -> dict[str, Comparable | None]:
    """the cached value of every live playlist's final version (None: missing)."""
    keys = [_final_key(life.playlist_id, life.final) for life in stream.live()]
    raw_values = await redis.mget(keys) if keys else []
    return {
        key: comparable(raw) if raw is not None else None
        for key, raw in zip(keys, raw_values, strict=True)
    }


async def matches_reference(
    redis: Any, stream: SyntheticStream, reference: Mapping[str, Comparable]
) -> bool:
    """the cheap check polled while recovering: every final entry as in the reference,
    no state left for a deleted playlist."""
    finals = await final_entries(redis, stream)
    if finals != reference:
        return False
    deleted = [state_key(life.playlist_id) for life in stream.playlists.values() if life.deleted]
    return not deleted or int(await redis.exists(*deleted)) == 0


async def judge(
    redis: Any,
    stream: SyntheticStream,
    reference: Mapping[str, Comparable] | None,
    oracle: Oracle,
) -> Verdict:
    """the full verdict on everything the cache holds (see the module's rules)."""
    verdict = Verdict()
    lives = stream.by_id()
    finals = await final_entries(redis, stream)
    expected_finals: dict[str, Comparable] = dict(reference or {})
    for life in stream.live():
        key = _final_key(life.playlist_id, life.final)
        if finals[key] is None:
            verdict.lost.append(life.playlist_id)
            continue
        if reference is None:
            assert life.final is not None
            expected_finals[key] = await oracle.expected(life.final)
        if finals[key] != expected_finals.get(key):
            verdict.wrong.append(key)

    lost_deletes: set[str] = set()
    async for raw_key in redis.scan_iter(match=f"{CACHE_PREFIX}:*", count=SCAN_BATCH):
        key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
        playlist_id, _, token = key.removeprefix(f"{CACHE_PREFIX}:").partition(":")
        verdict.cached_versions += 1
        owner = lives.get(playlist_id)
        if owner is None:
            verdict.wrong.append(key)  # a playlist the stream never had
            continue
        if owner.deleted:
            lost_deletes.add(playlist_id)
            continue
        if key in finals:
            continue  # judged above
        version = owner.versions.get(token)
        if version is None:
            verdict.wrong.append(key)
            continue
        raw = await redis.get(key)
        if raw is not None and comparable(raw) != await oracle.expected(version):
            verdict.wrong.append(key)

    for life in stream.playlists.values():
        raw_state = await redis.get(state_key(life.playlist_id))
        if life.deleted:
            if raw_state is not None:
                lost_deletes.add(life.playlist_id)
            continue
        if raw_state is None:
            continue  # its final entry is missing: already counted as lost
        state = PlaylistState.decode(raw_state)
        assert life.final is not None
        if state.token != life.final.cid:
            verdict.wrong.append(state_key(life.playlist_id))
    verdict.lost.extend(sorted(lost_deletes))
    return verdict


def _final_key(playlist_id: str, final: Version | None) -> str:
    assert final is not None, "a live playlist has a final version"
    return cache_key(playlist_id, final.cid)
