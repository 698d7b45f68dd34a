"""operating the processes: what each one tells Prometheus and a health check.

- `probes`: cheap, reused checks of Redis, PostgreSQL and turbopuffer, and the
  readiness they make;
- `server`: the /metrics and /health server of the worker and the consumer
  (METRICS_PORT);
- `worker_metrics`, `consumer_metrics`: adapters that read what those processes
  already count;
- `tracing`: OpenTelemetry export when OTEL_EXPORTER_OTLP_ENDPOINT is set.
"""
