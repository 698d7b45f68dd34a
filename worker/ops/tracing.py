"""OpenTelemetry traces: exported by OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set, free
when it is not.

the spans come from the parts that already make them through the OpenTelemetry API:
the consumer's `jetstream.enqueue` (one per batch of accepted changes), docket's
task spans (`recompute_playlist`, `forget_playlist`, ...), which docket links to the
span that enqueued them through the trace context it stores with each task, so one
recompute's trace crosses the consumer and the worker; and FastAPI's server span for
each API request (continuing plyr.fm's backend's trace from its `traceparent`).
without a provider installed here, those are the API's no-op spans.

plyr.fm sends its traces to logfire, which takes OTLP: set
OTEL_EXPORTER_OTLP_ENDPOINT=https://logfire-api.pydantic.dev and
OTEL_EXPORTER_OTLP_HEADERS=Authorization=<write token> (or any collector's URL).
the exporter reads the standard OTEL_* variables itself (headers, timeouts, the
batch processor's delay).
"""

from __future__ import annotations

import atexit
import logging

from opentelemetry import trace

from worker.settings import OpsSettings

logger = logging.getLogger(__name__)

_installed = False


def configure_tracing(settings: OpsSettings, *, process: str) -> bool:
    """install the OTLP exporter for `process` (service.name `plyr-recs-<process>`) when
    OTEL_EXPORTER_OTLP_ENDPOINT is set; True when traces are exported."""
    global _installed
    if settings.otel_exporter_otlp_endpoint is None or _installed:
        return _installed
    # imported here: a process that exports nothing loads none of the SDK
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": f"plyr-recs-{process}"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    atexit.register(provider.shutdown)  # the last batch leaves before the process does
    _installed = True
    logger.info("traces of %s exported by OTLP", process)
    return True


def tracing_enabled() -> bool:
    """whether this process exports traces (the API turns FastAPI's spans on then)."""
    return _installed
