"""the `plyr-recs worker` processes: how many recomputes each runs, and how a task
is taken over or waits."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from worker.settings.base import Section


class WorkerSettings(Section):
    title = "Workers"

    worker_concurrency: Annotated[int, Field(ge=1, le=256)] = Field(
        default=10,
        description="recomputes one `plyr-recs worker` process runs at once (they wait on "
        "turbopuffer and PostgreSQL, so more than the cores).",
    )
    worker_check_seconds: Annotated[float, Field(ge=0.01, le=5)] = Field(
        default=0.05,
        description="how long a worker with every slot busy waits before it looks again "
        "for work, and how long its read of the queue blocks when idle (docket's "
        "`minimum_check_interval`). docket's own 0.25 s held a busy worker to "
        "WORKER_CONCURRENCY / 0.25 recomputes a second, its slots idle in between.",
    )
    worker_redelivery_seconds: Annotated[float, Field(ge=1, le=3600)] = Field(
        default=180.0,
        description="how long a task stays claimed by a worker that stopped renewing its "
        "lease (killed, partitioned) before another worker takes it over. above the task "
        "timeout (120 s), so a slow but alive worker is never doubled up; the reliability "
        "tests lower it to see a SIGKILLed worker's task redelivered in seconds.",
    )
    playlist_wait_seconds: Annotated[float, Field(ge=0, le=3600)] = Field(
        default=120.0,
        description="how long a recompute waits, retrying with backoff, for plyr.fm to "
        "ingest a playlist it does not know yet (its own ingest lags the firehose by "
        "seconds) before dropping it with a log line.",
    )
