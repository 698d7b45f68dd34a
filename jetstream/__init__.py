"""the Jetstream consumer: playlist changes from the firehose become docket tasks.

what the package offers:

- `JetstreamConsumer` (+ `ConsumerConfig`): the long-running consumer, with
  injected Redis and docket, used by `plyr-recs jetstream` and `plyr-recs run`;
- `decode_frame` (v1) and `decode_v2_frame` (+ `FrameLimits`) and the event types
  they return: one frame in, one typed event out, never an exception; markers
  (`TrackDelete`, `RepoResync`) go to an injected `MarkerSink`;
- `ReplayServer` (+ `ReplayFaults`): a Jetstream-compatible server replaying
  recorded frames, for tests, the embedded mode and benchmarks;
- `read_status` / `render_status`: what `plyr-recs status` prints.

the modules, one idea each: `frames` / `frames_v2` (decode per wire) and
`records` (the list record), `zstd_frames` and `dictionary` (v2 compression),
`syntax` (atproto identifiers), `guard` (rev/CID per playlist), `cursor` (per
wire), `blind` (blind-host detection), `contract` (the tasks it enqueues: names,
keys, argument bounds; the worker hands the functions in), `enqueue` (the docket
call pattern), `flood` (per-DID pacing and caps), `task_records` (which tasks
docket still keeps: the byte caps held until a task ends), `batch` (one batch end to end),
`stats`, `backoff`, `subscription` (the fleet, wires and URLs), `reader`,
`consumer` (the connection loop), `faults` (the service's one fault classifier,
Redis' faults included), `replay` / `replay_v2`, `status`, `keys` (the consumer's
Redis keys; their TTLs are in `engine.keys`), `samples` (recorded frames).

it imports `engine`, never `worker`: the process that runs it (`worker.processes`)
builds its config and hands it its clients and the task functions.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from jetstream.events import (
    Event,
    InvalidReason,
    ListChange,
    ListCommit,
    ListDelete,
    Marker,
    Rejected,
    RepoResync,
    Skipped,
    SkipReason,
    TrackDelete,
)
from jetstream.frames import FrameLimits, decode_frame
from jetstream.frames_v2 import decode_v2_frame

if TYPE_CHECKING:
    from jetstream.batch import MarkerSink
    from jetstream.config import ConsumerConfig
    from jetstream.consumer import JetstreamConsumer
    from jetstream.enqueue import Enqueued
    from jetstream.replay import ReplayFaults, ReplayServer
    from jetstream.status import read_status, render_status

# the connection side (docket, websockets, redis) loads on first use:
# the API and the worker import `jetstream.records` / `jetstream.syntax` to validate
# records and must not pull the consumer in with them.
_LAZY = {
    "MarkerSink": "jetstream.batch",
    "ConsumerConfig": "jetstream.config",
    "JetstreamConsumer": "jetstream.consumer",
    "Enqueued": "jetstream.enqueue",
    "ReplayFaults": "jetstream.replay",
    "ReplayServer": "jetstream.replay",
    "read_status": "jetstream.status",
    "render_status": "jetstream.status",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'jetstream' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "ConsumerConfig",
    "Enqueued",
    "Event",
    "FrameLimits",
    "InvalidReason",
    "JetstreamConsumer",
    "ListChange",
    "ListCommit",
    "ListDelete",
    "Marker",
    "MarkerSink",
    "Rejected",
    "ReplayFaults",
    "ReplayServer",
    "RepoResync",
    "SkipReason",
    "Skipped",
    "TrackDelete",
    "decode_frame",
    "decode_v2_frame",
    "read_status",
    "render_status",
]
