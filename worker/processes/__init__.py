"""one module per long-running process, each opening with why it exists.

- `worker`: `plyr-recs worker`, docket workers for the tasks (any number);
- `jetstream`: `plyr-recs jetstream`, the consumer on the shared Redis (exactly one);
- `run`: `plyr-recs run`, everything in one process on embedded defaults, with
  `live_view` printing what happens;
- `logs`: the one logging setup.

`plyr-recs api` is `worker.api.app.run`.
"""
