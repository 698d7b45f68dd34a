"""the service's one fault classifier: the engine's kinds plus the Redis client's.

Redis is the one dependency every part (consumer, worker, API) talks to with
its client library directly rather than through an adapter, so its faults are
classified here, once, for all of them (arrows point worker -> jetstream ->
engine, so the worker and the API import this too).
"""

from __future__ import annotations

from typing import Final

import redis.exceptions

from engine.errors import ENGINE_FAULTS, FaultClassifier

# "Redis is not answering": refused or reset (ConnectionError; a restarted Redis
# still loading its dataset, BusyLoadingError, is one), or the client's socket timeout
REDIS_UNAVAILABLE: Final = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

FAULTS: Final[FaultClassifier] = ENGINE_FAULTS.extended(
    transient=(
        *REDIS_UNAVAILABLE,
        redis.exceptions.ReadOnlyError,  # a replica after a failover, until it is promoted
        redis.exceptions.OutOfMemoryError,  # maxmemory reached: workers will drain the queue
    )
)
