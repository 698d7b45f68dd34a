"""a generated session of playlist edits, as the Jetstream v1 frames that carry them.

`plyr-recs run` replays this over a local websocket to the real consumer, so the
demo shows every path a real firehose exercises: playlists created at every
size the engine cares about (1 track: direct; 2-5: RRF; 6+: k-means), tracks
added and removed, reorders and renames (new CID, same tracks: reused, not
recomputed), bursts of rapid edits (collapsed by the debounce), deletes, an
album and a liked list (ignored), other collections, identity and account
events, a duplicate and a stale redelivery, and malformed frames.

keeping plyr.fm's side in step: in production plyr.fm's own backend writes the
`playlists` row (with the newest record CID) as the user edits; this service
only reads it, and the API derives the cache key from that CID. the demo has no
such backend, so each step carries the `CatalogueEdit` plyr.fm would have made.
whoever replays the frames calls `session.apply(i, catalog)` for frame i just
before sending it (plyr.fm writes its row as the edit is made, before the
firehose carries the commit; the worker's wait for a late row covers the other
order too). after the last frame the catalog's playlists are exactly
`session.expected`.

everything is drawn from the seed: the same catalogue and seed give the same
frames, byte for byte.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from worker.demo.catalogue import DemoCatalogue
from worker.demo.extras import OTHER_RECORDS, REPLAYED, render_extra
from worker.demo.steps import (
    CatalogueEdit,
    DemoSession,
    ExpectedPlaylist,
    SessionStep,
    StepKind,
)
from worker.demo.story import TEMPLATES, Planned, Story

__all__ = [
    "CatalogueEdit",
    "DemoSession",
    "ExpectedPlaylist",
    "SessionStep",
    "StepKind",
    "generate_session",
]

# 2026-01-15T00:00:00Z: a fixed start, so a seed gives the same frames every time.
# a run against a Redis that remembers an earlier run should pass the current time
# instead, or the consumer's cursor and rev guard will take it all for replays.
SESSION_START_US: Final = 1_768_435_200_000_000
DEFAULT_SPACING_MS: Final = 250
MIN_PLAYLISTS: Final = 6  # the first six templates hold every part of the story
MAX_PLAYLISTS: Final = 200
MALFORMED_FRAMES: Final = 9  # one of each kind `wire.malformed_frames` writes


def generate_session(
    catalogue: DemoCatalogue,
    *,
    playlists: int = 12,
    seed: int = 0,
    start_time_us: int = SESSION_START_US,
    spacing_ms: float = DEFAULT_SPACING_MS,
) -> DemoSession:
    """the session for a catalogue: `playlists` playlists living through the story.

    `spacing_ms` is the usual gap between frames (jittered; bursts are 8x
    denser); the replayer decides whether to honour it or to go faster.
    """
    if not MIN_PLAYLISTS <= playlists <= MAX_PLAYLISTS:
        raise ValueError(f"playlists must be within {MIN_PLAYLISTS}..{MAX_PLAYLISTS}")
    if not 0 < spacing_ms <= 60_000:
        raise ValueError("spacing_ms must be within (0, 60000]")
    if not 0 < start_time_us < 2**52:
        raise ValueError("start_time_us must be a unix time in microseconds")
    story = Story(
        catalogue,
        seed=seed,
        start_time_us=start_time_us,
        spacing_us=max(1, round(spacing_ms * 1000)),
    )
    story.cast(playlists)
    for planned in plan(story.rng, playlists):
        if planned.act is not None:
            story.render(planned)
        else:
            story.tick()
            render_extra(story, planned.extra, planned.variant)
    return story.session()


def plan(rng: np.random.Generator, playlists: int) -> list[Planned]:
    """the order of everything: playlists' acts interleaved at random (each playlist's
    own acts stay in order), the extra frames sprinkled between them."""
    queues = [list(TEMPLATES[i % len(TEMPLATES)]) for i in range(playlists)]
    order: list[Planned] = []
    while any(queues):
        waiting = [i for i, queue in enumerate(queues) if queue]
        chosen = waiting[int(rng.integers(len(waiting)))]
        order.append(Planned(chosen, queues[chosen].pop(0)))
    extras = [Planned(None, extra="album"), Planned(None, extra="liked")]
    extras += [Planned(None, extra="other", variant=i) for i in range(len(OTHER_RECORDS))]
    extras += [Planned(None, extra="identity", variant=i) for i in range(2)]
    extras += [Planned(None, extra="account", variant=i) for i in range(2)]
    extras += [Planned(None, extra="malformed", variant=i) for i in range(MALFORMED_FRAMES)]
    for planned in extras:
        order.insert(int(rng.integers(len(order) + 1)), planned)
    # the replays come after the replayed playlist's third commit, so that both a
    # duplicate of its latest and a stale copy of its first make sense there
    third = [planned for planned in order if planned.playlist == REPLAYED][2]
    for replay in ("duplicate", "stale"):
        after = order.index(third) + 1
        order.insert(int(rng.integers(after, len(order) + 1)), Planned(None, extra=replay))
    return order
