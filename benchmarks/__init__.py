"""benchmarks that run the service as deployed, beyond `plyr-recs bench` (run each with
`uv run python -m benchmarks.<name>`)."""
