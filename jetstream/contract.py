"""the tasks the consumer enqueues, as a contract the worker implements.

the consumer does not import the worker (arrows point worker -> jetstream ->
engine): it knows the tasks by name, docket key and argument bounds, and the
process that runs it hands the task functions in (`TaskFunctions`). the worker's
tasks (`worker.tasks`) are registered under these names and check the same
bounds again, since their arguments travel through Redis.

- `recompute_playlist(playlist_uri, cid, rev, track_uris)` under
  `recompute_key(playlist_uri)`, replaced on every accepted edit so rapid edits
  collapse into one run of the newest state;
- `forget_playlist(playlist_uri, rev)` under `forget_key(playlist_uri)` on a delete;
- `withdraw_track(track_uri, did)` under `withdraw_key(track_uri)` on a track delete
  (scheduled by the marker sink the process running the consumer hands in).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from engine.types import MAX_LIST_ITEMS
from jetstream.syntax import DID, NSID, RKEY

RECOMPUTE_TASK: Final = "recompute_playlist"
FORGET_TASK: Final = "forget_playlist"

# argument bounds, checked by the consumer's validation before enqueueing and by
# the task before running (a queue is not a trust boundary to skip)
LIST_URI_RE: Final = re.compile(rf"at://{DID}/{NSID}/{RKEY}")
MAX_CID_LENGTH: Final = 200
MAX_REV_LENGTH: Final = 64
MAX_TRACK_URIS: Final = MAX_LIST_ITEMS
# a real track URI is ~65 characters (`at://did:plc:<24>/fm.plyr.track/<13-char TID>`);
# 128 leaves room for a did:web host of ~80 characters or a longer record key,
# and keeps a full task's URIs under 64 KiB (every byte of them sits in Redis
# until the task runs: see jetstream.flood).
MAX_TRACK_URI_LENGTH: Final = 128

# how long docket keeps a finished task's run record, which holds a copy of its
# arguments (docket's default is 15 minutes). a minute is plenty to see a task
# finish, and it bounds what finished tasks keep in Redis: at most a minute of
# the workers' throughput (see the README's "Redis bytes").
EXECUTION_TTL: Final = timedelta(seconds=60)

TaskFunction = Callable[..., Awaitable[None]]


def recompute_key(playlist_uri: str) -> str:
    """the docket key of a playlist's pending recompute (one per playlist)."""
    return f"recompute:{playlist_uri}"


def forget_key(playlist_uri: str) -> str:
    """the docket key of a playlist's pending forget."""
    return f"forget:{playlist_uri}"


def withdraw_key(track_uri: str) -> str:
    """the docket key of a deleted track's withdrawal (`worker.tasks.withdrawals`)."""
    return f"withdraw:{track_uri}"


# the docket key families of the tasks the consumer schedules (what it holds the
# bytes of, and finds again after a restart: jetstream.task_records)
CONSUMER_KEY_PREFIXES: Final = (recompute_key(""), forget_key(""), withdraw_key(""))


@dataclass(frozen=True, slots=True)
class TaskFunctions:
    """the worker's task functions, handed to the consumer by the process running it.

    docket registers a function under its `__name__`; a function under another
    name would be enqueued where no worker looks, so that is refused here."""

    recompute: TaskFunction
    forget: TaskFunction

    def __post_init__(self) -> None:
        for function, name in ((self.recompute, RECOMPUTE_TASK), (self.forget, FORGET_TASK)):
            actual: Any = getattr(function, "__name__", None)
            if actual != name:
                raise ValueError(f"the {name} task must be registered as {name!r}, not {actual!r}")
