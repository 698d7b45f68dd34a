"""faulty deliveries of a synthetic stream that change nothing it means.

older revisions delivered again after newer ones, commits moved later than
newer commits of the same playlist, the whole capture delivered a second time:
what Jetstream's at-least-once delivery, replays and host rotations produce.
the final state of every playlist stays the stream's, and each frame keeps a
`time_us` that never decreases, as a Jetstream host stamps it.
"""

from __future__ import annotations

import numpy as np
import orjson

from bench.reliability.stream import SyntheticStream
from worker.demo.wire import LIST_COLLECTION


def _commit_positions(stream: SyntheticStream) -> dict[str, list[int]]:
    """frame indices of each playlist's create/update commits, in order."""
    positions: dict[str, list[int]] = {}
    for index, frame in enumerate(stream.frames):
        event = orjson.loads(frame)
        commit = event.get("commit")
        if not isinstance(commit, dict) or commit.get("operation") == "delete":
            continue
        uri = f"at://{event['did']}/{LIST_COLLECTION}/{commit.get('rkey')}"
        if uri in stream.playlists:
            positions.setdefault(uri, []).append(index)
    return positions


def _restamped(frame: bytes, time_us: int) -> bytes:
    event = orjson.loads(frame)
    event["time_us"] = time_us
    return orjson.dumps(event)


def _rebuild(
    stream: SyntheticStream, inserts: dict[int, list[bytes]], removed: set[int], extra: int
) -> SyntheticStream:
    """the stream with `inserts[i]` delivered right after frame i and `removed` frames
    left out; inserted frames are stamped 1 µs apart after their predecessor."""
    frames: list[bytes] = []
    stamps: list[int] = []
    for index, (frame, stamp) in enumerate(zip(stream.frames, stream.time_us, strict=True)):
        if index not in removed:
            frames.append(frame)
            stamps.append(stamp)
        for offset, late in enumerate(inserts.get(index, ()), start=1):
            frames.append(_restamped(late, stamp + offset))
            stamps.append(stamp + offset)
    return SyntheticStream(tuple(frames), stream.playlists, tuple(stamps), extra)


def with_out_of_order_revisions(
    stream: SyntheticStream, *, every: int, seed: int = 0
) -> SyntheticStream:
    """every `every`-th commit that is not a playlist's last is moved after a newer
    commit of its playlist, and an older commit is delivered again after each newer
    one of every `every`-th playlist: in both, an older record comes after a newer."""
    rng = np.random.default_rng(seed)
    inserts: dict[int, list[bytes]] = {}
    removed: set[int] = set()
    extra = 0
    counter = 0
    for positions in _commit_positions(stream).values():
        for rank, position in enumerate(positions[:-1]):
            counter += 1
            if counter % every:
                continue
            later = positions[int(rng.integers(rank + 1, len(positions)))]
            removed.add(position)  # delivered only after a newer revision
            inserts.setdefault(later, []).append(stream.frames[position])
            extra += 1
    for number, positions in enumerate(_commit_positions(stream).values()):
        if number % every or len(positions) < 2:
            continue
        for rank in range(1, len(positions)):  # a stale copy after each newer commit
            older = positions[int(rng.integers(rank))]
            inserts.setdefault(positions[rank], []).append(stream.frames[older])
            extra += 1
    return _rebuild(stream, inserts, removed, extra)


def replayed_twice(stream: SyntheticStream) -> SyntheticStream:
    """the whole capture delivered again after itself, as a host replaying it would
    (same bytes; only the envelope's `time_us` is the later delivery's)."""
    shift = stream.last_time_us - stream.time_us[0] + 1_000
    stamps = tuple(stamp + shift for stamp in stream.time_us)
    again = tuple(
        _restamped(frame, stamp) for frame, stamp in zip(stream.frames, stamps, strict=True)
    )
    return SyntheticStream(
        stream.frames + again, stream.playlists, stream.time_us + stamps, len(again)
    )
