"""spans around what a recompute waits on: plyr.fm's PostgreSQL, turbopuffer, the
owner's PDS and the cache in Redis.

applied by `open_services` only when this process exports traces
(`worker.ops.tracing`): otherwise the parts are used as they are, and a recompute
pays nothing for tracing. each wrapped call becomes one span under whatever span is
current, so inside a docket task (whose span docket makes, linked to the consumer's
enqueue) or an API request (FastAPI's server span) the tree reads, for one recompute:

    recompute_playlist
      postgresql resolve_playlist
      redis lock.acquire        (worker.store.lock, with the first reads)
      postgresql resolve_tracks
      turbopuffer get_vectors
      turbopuffer query_many
      postgresql hydrate
      redis cache.put
      redis lock.release

(a run of a reconcile batch has `turbopuffer shared_query` in place of query_many:
its wait at the batch's gate and the request shared with the batch's other runs.)

one span per call, not per Redis command or SQL statement: the client libraries'
own instrumentation would also trace docket's polling of Redis, a stream of root
spans with no recompute above them. the spans carry sizes (how many ids, how many
queries), never a track's, playlist's or person's data.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sized
from typing import Any, Final, TypeVar

from opentelemetry import trace
from opentelemetry.trace import SpanKind

T = TypeVar("T")

# what is wrapped, by the part it stands for
POSTGRES_METHODS: Final = (
    "resolve_tracks",
    "track_uris",
    "resolve_playlist",
    "resolve_playlist_and_tracks",
    "get_playlist",
    "hydrate",
    "eligible_ids",
    "list_playlists",
)
TURBOPUFFER_METHODS: Final = ("get_vectors", "query_many")
# a reconcile batch's run: its searches' wait at the batch's gate, and the shared
# request that answers them (`engine.query_gate`), in place of its query_many
GATE_METHODS: Final = ("shared_query",)
PDS_METHODS: Final = ("fetch", "list_page")
CACHE_METHODS: Final = ("get", "get_state", "put")

_tracer = trace.get_tracer("plyr-recs")


def traced(part: T, *, system: str, methods: tuple[str, ...], prefix: str = "") -> T:
    """`part` with each of its `methods` (coroutine methods) run inside a client span
    named "<system> <prefix><method>"; the instance is changed in place and returned.
    a method the part lacks is a mistake in the lists above: AttributeError."""
    for name in methods:
        method = getattr(part, name)
        setattr(part, name, _spanned(method, f"{system} {prefix}{name}", system))
    return part


def _spanned(
    method: Callable[..., Awaitable[Any]], span_name: str, system: str
) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(method)
    async def run(*args: Any, **kwargs: Any) -> Any:
        with _tracer.start_as_current_span(
            span_name, kind=SpanKind.CLIENT, record_exception=True, set_status_on_exception=True
        ) as span:
            span.set_attribute("db.system" if system != "pds" else "rpc.system", system)
            if args and isinstance(args[0], Sized) and not isinstance(args[0], str):
                span.set_attribute("plyr.items", len(args[0]))
            result = await method(*args, **kwargs)
            if isinstance(result, Sized) and not isinstance(result, (str, bytes)):
                span.set_attribute("plyr.results", len(result))
            return result

    return run
