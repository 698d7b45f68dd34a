"""the garbage collector, set for a long-running service process.

CPython's cyclic collector runs by allocation counts: a young collection every 700
net new container objects, older ones every 10 of those, and a full collection of
everything alive once the long-lived heap has grown by a quarter. two of its costs
showed in the worker (`python -m bench scale --playlists 2000 --workers 1`, every
collection timed through `gc.callbacks`; README, "Issue 20, the eighth round"):

- a full collection walks everything alive, and most of that is what start-up
  built for good (docket's, pydantic's and the SDKs' classes and models, the
  pools): ~125,000 objects, 11 full collections, 0.98 s of the worker's 15.5 s.
  frozen (`gc.freeze`), those objects are out of the collector's sight; a full
  collection walks only what the service made since;
- a recompute allocates thousands of short-lived containers (answers' rows,
  candidates, tracks): at 700 a young collection, 1,410 young and 129 middle
  collections (0.70 s) walked the recomputes in flight, and promoted their
  objects, which brought the full collections sooner. at 20,000 most of those
  objects are freed (by reference counting) before any collection sees them:
  33, 3 and 1 collections, 0.13 s in all.

the threshold bounds what a young collection walks (20,000 objects, a few
milliseconds): the API, where a person waits on every pause, keeps CPython's.
"""

from __future__ import annotations

import gc
from typing import Final

from prometheus_client import Gauge, GCCollector
from prometheus_client.registry import CollectorRegistry

# net new container objects between two young collections in a worker (CPython: 700)
WORKER_YOUNG_THRESHOLD: Final = 20_000


def freeze_startup_heap() -> None:
    """put everything alive at start-up out of the garbage collector's sight.

    what a serving process holds for good (FastAPI's, pydantic's and the atproto
    SDK's classes and models, the pools, an embedded catalog) is ~180,000 objects
    in `python -m bench api`'s server, and each full collection walked all of them:
    ~110 ms with every request waiting. frozen, a full collection walks only what
    requests left behind (the bench, 64 clients: p99 157 ms -> 40 ms).
    """
    gc.collect()
    gc.freeze()


def settle_worker_heap() -> None:
    """a worker's collector: its start-up heap frozen, its young collections rarer
    (the module's doc); the older generations' thresholds are CPython's."""
    freeze_startup_heap()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(WORKER_YOUNG_THRESHOLD, middle, old)


def heap_metrics(registry: CollectorRegistry) -> None:
    """the collector's work on /metrics: collections and objects collected by
    generation (`python_gc_*`), and how many objects are frozen."""
    GCCollector(registry=registry)
    frozen = Gauge(
        "plyr_recs_gc_frozen_objects",
        "objects start-up built for good, out of the garbage collector's sight",
        registry=registry,
    )
    frozen.set_function(gc.get_freeze_count)
