"""one module per long-running process, each opening with why it exists.

- `worker`: `plyr-recs worker`, docket workers for the tasks (any number);
- `jetstream`: `plyr-recs jetstream`, the consumer on the shared Redis (exactly one);
- `run`: `plyr-recs run`, everything in one process on embedded defaults, with
  `live_view` printing what happens;
- `logs`: the one logging setup (LOG_LEVEL, LOG_FORMAT);
- `startup`: the settings and URLs checked, and every refusal as one line, status 2;
- `waiting`: the bounded wait for Redis and PostgreSQL at start;
- `ops`: what each process waits for and serves on METRICS_PORT (`worker.ops`).

`plyr-recs api` is `worker.api.app.run`.
"""
