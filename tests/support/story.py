"""the sample story (bench/samples/jetstream-v1.jsonl) and what it must cause: the
tasks enqueued, in order, and what docket holds afterwards. every wire and every
fault scenario is held to the same outcome."""

from __future__ import annotations

import orjson

from jetstream import Enqueued
from jetstream.contract import forget_key, recompute_key
from tests.support.jetstream_world import Pending
from tests.support.samples import story_frames

STORY = story_frames()
STORY_JSON = [orjson.loads(frame) for frame in STORY]
STORY_TIMES: list[int] = [frame["time_us"] for frame in STORY_JSON]
LAST_STORY_TIME = STORY_TIMES[-1]


def uri_of(frame: dict[str, object]) -> str:
    commit = frame["commit"]
    assert isinstance(commit, dict)
    return f"at://{frame['did']}/{commit['collection']}/{commit['rkey']}"


def recompute_of(index: int) -> Enqueued:
    """what the story's frame `index` must enqueue (from the frame itself)."""
    frame = STORY_JSON[index]
    commit = frame["commit"]
    tracks = tuple(item["subject"]["uri"] for item in commit["record"]["items"])
    return Enqueued(
        "recompute", uri_of(frame), commit["rev"], frame["time_us"], commit["cid"], tracks
    )


def forget_of(index: int) -> Enqueued:
    frame = STORY_JSON[index]
    return Enqueued("forget", uri_of(frame), frame["commit"]["rev"], frame["time_us"])


# the story's notes: p1's five edits (the sixth frame is a replay), p2, p3, p4 created
# then deleted. nothing for the album (6), the liked list (7), the track (10), identity
# (11) or account (12).
STORY_ENQUEUED = [
    *(recompute_of(i) for i in range(5)),
    recompute_of(8),
    recompute_of(9),
    recompute_of(13),
    forget_of(14),
]


def story_pending() -> dict[str, Pending]:
    """what docket must hold after the story: the newest state of each live playlist,
    and a forget (not a recompute) for the deleted one."""
    pending = {}
    for index in (4, 8, 9):
        change = recompute_of(index)
        pending[recompute_key(change.playlist_uri)] = Pending(
            "recompute_playlist",
            (change.playlist_uri, change.cid, change.rev, list(change.track_uris)),
        )
    deleted = uri_of(STORY_JSON[14])
    pending[forget_key(deleted)] = Pending(
        "forget_playlist", (deleted, STORY_JSON[14]["commit"]["rev"])
    )
    return pending
