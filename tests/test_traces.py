"""one recompute's trace crosses the processes: `plyr-recs jetstream` and `plyr-recs
worker` export to an OTLP receiver on loopback, the worker's task span links to the
consumer's enqueue span through the trace context docket carries with the task, and
under the task are the calls it waited on: PostgreSQL, turbopuffer, Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from bench.loopback.catalog_rows import load_into_postgres
from bench.loopback.servers import RedisServer
from bench.loopback.turbopuffer import TurbopufferServer
from jetstream import ReplayServer
from tests.support.samples import load_catalog, story_frames
from tests.support.turbopuffer_world import API_KEY, NAMESPACE, catalog_vectors

PLYR_RECS = str(Path(sys.executable).with_name("plyr-recs"))

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    links: tuple[tuple[str, str], ...]  # (trace id, span id)


@asynccontextmanager
async def otlp_receiver() -> AsyncIterator[tuple[str, list[Span]]]:
    """an OTLP/HTTP trace endpoint on 127.0.0.1 that keeps what it is sent."""
    spans: list[Span] = []

    async def receive(request: web.Request) -> web.Response:
        export = ExportTraceServiceRequest.FromString(await request.read())
        for resource_spans in export.resource_spans:
            service = next(
                attribute.value.string_value
                for attribute in resource_spans.resource.attributes
                if attribute.key == "service.name"
            )
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        Span(
                            service,
                            span.name,
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                            tuple((link.trace_id.hex(), link.span_id.hex()) for link in span.links),
                        )
                    )
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    app = web.Application()
    app.router.add_post("/v1/traces", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", spans
    finally:
        await runner.cleanup()


def tree(spans: list[Span], root: Span) -> str:
    """the spans of `root`'s trace and those linked to it, as indented text."""
    lines: list[str] = []

    def walk(span: Span, depth: int) -> None:
        lines.append(f"{'  ' * depth}{span.service}: {span.name}")
        for other in spans:
            if other.trace_id == span.trace_id and other.parent_id == span.span_id:
                walk(other, depth + 1)
            elif (span.trace_id, span.span_id) in other.links:
                lines.append(f"{'  ' * (depth + 1)}-> linked:")
                walk(other, depth + 2)

    walk(root, 0)
    return "\n".join(lines)


async def test_a_recompute_is_traced_from_the_consumer_into_the_worker(
    redis_client: aioredis.Redis, redis_server: RedisServer, postgres_dsn: str, tmp_path: Path
) -> None:
    # redis_client flushed the server: the story is new to the consumer
    await load_into_postgres(postgres_dsn, load_catalog())
    async with (
        otlp_receiver() as (endpoint, spans),
        ReplayServer(story_frames()) as replay,
        TurbopufferServer() as turbopuffer,
    ):
        turbopuffer.seed(NAMESPACE, catalog_vectors())
        environment = {
            **os.environ,
            "REDIS_URL": redis_server.url,
            "DOCKET_URL": redis_server.url,
            "DOCKET_NAME": f"traces-{uuid.uuid4().hex[:8]}",
            "DATABASE_URL": postgres_dsn,
            "JETSTREAM_URL": replay.url,
            "DEBOUNCE_SECONDS": "0",
            "PLAYLIST_WAIT_SECONDS": "1",
            "TURBOPUFFER_API_KEY": API_KEY,
            "TURBOPUFFER_BASE_URL": turbopuffer.base_url,
            "TURBOPUFFER_NAMESPACE": NAMESPACE,
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        processes = [
            await asyncio.create_subprocess_exec(
                PLYR_RECS, command, cwd=tmp_path, env=environment, stderr=asyncio.subprocess.PIPE
            )
            for command in ("jetstream", "worker")
        ]
        try:
            deadline = time.monotonic() + 60
            while not linked_recompute(spans, computed=True):
                assert all(p.returncode is None for p in processes), "a process exited"
                assert time.monotonic() < deadline, sorted({(s.service, s.name) for s in spans})
                await asyncio.sleep(0.2)
        finally:
            for process in processes:
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
            await asyncio.gather(*(p.communicate() for p in processes))
    enqueue, recompute = linked_recompute(spans, computed=True) or (None, None)
    assert enqueue is not None
    assert recompute is not None
    assert enqueue.service == "plyr-recs-jetstream"
    assert recompute.service == "plyr-recs-worker"
    # what the recompute waited on, each a span under the task's
    inside = {s.name for s in under(spans, recompute)}
    # the playlist and its tracks: one statement
    assert {"postgresql resolve_playlist_and_tracks", "postgresql hydrate"} <= inside, inside
    assert {"turbopuffer get_vectors", "turbopuffer query_many"} <= inside, inside
    assert {"redis lock.acquire", "redis cache.put"} <= inside, inside
    # the write releases the lock in its own script: no round trip, so no span, of its own
    assert "redis lock.release" not in inside, inside
    print("\n" + tree(spans, enqueue))  # the span tree, for the note (pytest -s)


def under(spans: list[Span], parent: Span) -> list[Span]:
    """every span below `parent` in its trace."""
    children = [s for s in spans if s.trace_id == parent.trace_id and s.parent_id == parent.span_id]
    return [*children, *(deeper for child in children for deeper in under(spans, child))]


def linked_recompute(spans: list[Span], *, computed: bool) -> tuple[Span, Span] | None:
    """a consumer's enqueue span and a worker's recompute span linked to it (or to a
    span under it: docket's own `docket.replace_many` carries the context); with
    `computed`, only a recompute that queried turbopuffer (the engine ran)."""
    by_id = {(s.trace_id, s.span_id): s for s in spans}
    for span in spans:
        if span.name != "recompute_playlist":
            continue
        if computed and not any(s.name == "turbopuffer query_many" for s in under(spans, span)):
            continue
        for link in span.links:
            linked = by_id.get(link)
            while linked is not None and linked.name != "jetstream.enqueue":
                linked = by_id.get((linked.trace_id, linked.parent_id))
            if linked is not None:
                return linked, span
    return None


async def test_without_an_exporter_nothing_is_wrapped(
    redis_client: aioredis.Redis, postgres_dsn: str
) -> None:
    # a process that exports no traces pays nothing per call: its parts are the bare ones
    from worker.ops.tracing import tracing_enabled
    from worker.recs.services import open_services
    from worker.settings import Settings

    assert not tracing_enabled()
    async with open_services(Settings(database_url=postgres_dsn), redis=redis_client) as services:
        for method in (services.cache.put, services.catalog.hydrate, services.pds.fetch):  # type: ignore[union-attr]
            assert getattr(method, "__wrapped__", None) is None, method


async def test_with_an_exporter_a_batch_runs_searches_at_the_gate_are_a_span(
    redis_client: aioredis.Redis, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a worker that exports traces wraps the gate's shared searches too: a batch's
    # runs send theirs there, not through the store's query_many
    from pydantic import SecretStr

    from engine.query_gate import GatedStore
    from worker.ops import tracing
    from worker.recs.services import open_services
    from worker.settings import Settings

    monkeypatch.setattr(tracing, "_installed", True)
    settings = Settings(
        database_url=postgres_dsn,
        turbopuffer_api_key=SecretStr(API_KEY),
        turbopuffer_base_url="http://127.0.0.1:9",
        vector_cache_size=0,
    )
    async with open_services(settings, redis=redis_client) as services:
        gated = services.store
        assert isinstance(gated, GatedStore)
        assert getattr(gated.shared_query, "__wrapped__", None) is not None
        assert getattr(services.catalog.hydrate, "__wrapped__", None) is not None
