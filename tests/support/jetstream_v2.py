"""v2 helpers for the Jetstream tests: a zstd dictionary trained on frames shaped like the
story's, and v1-shaped marker frames the replay server renders in the v2 framing."""

from __future__ import annotations

from functools import lru_cache

import orjson

from jetstream.replay_v2 import render_v2
from jetstream.zstd_frames import train_dictionary
from tests.support.jetstream_world import did, identity, tid
from tests.support.story import STORY


@lru_cache(maxsize=1)
def story_dictionary() -> bytes:
    """trained on the story and on identity events, as a host trains on its traffic."""
    samples = [render_v2(frame.encode(), 1000 + n) or b"" for n, frame in enumerate(STORY)]
    samples += [
        render_v2(identity(owner=did(n), time_us=1_763_700_000_000_000 + n), n) or b""
        for n in range(400)
    ]
    return train_dictionary(samples, size=8 * 1024)


def track_delete(*, owner: str, rkey: str, rev: str, time_us: int) -> bytes:
    return orjson.dumps(
        {
            "did": owner,
            "time_us": time_us,
            "kind": "commit",
            "commit": {
                "rev": rev,
                "operation": "delete",
                "collection": "fm.plyr.track",
                "rkey": rkey,
            },
        }
    )


def repo_sync(*, owner: str, rev: int, time_us: int) -> bytes:
    """a `#sync` in the replay's v1 shape (only the v2 endpoint sends it)."""
    return orjson.dumps(
        {
            "did": owner,
            "time_us": time_us,
            "kind": "sync",
            "sync": {"did": owner, "rev": tid(rev), "seq": 5, "time": "2025-11-21T04:40:00Z"},
        }
    )
