"""the service's processes and everything only they need: tasks, API, settings, wiring.

arrows point one way: `worker` imports `jetstream` and `engine`, never the
reverse (checked by `lint-imports`). the packages, one concern each:

    settings/     the one settings object, in sections (every field documented; README tables)
    wiring.py     Settings -> what each part is configured with; the one Redis factory
    cli.py        `plyr-recs`: dispatches to a process or a benchmark
    processes/    one entry point per process: worker, jetstream, run (embedded), logs
    tasks/        the docket tasks, the recompute path, the playlist lock, Services
    store/        the only Redis I/O for the cache (entries, state, batched reads)
    api/          the HTTP API: the app, the answer decision, metrics, the OpenAPI doc
    identity/     who is asking and what they own: service auth, JWTs, DIDs, PDS reads
    demo/         the embedded mode's generated catalogue and session of edits
    loopback/     real servers and stand-ins on loopback, for tests and benchmarks
    bench/        `python -m bench ...`: every benchmark and its harness
"""
