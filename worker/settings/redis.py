"""where the shared state and the task queue live: Redis, and docket on it."""

from __future__ import annotations

from pydantic import Field

from worker.settings.base import OptionalText, Section


class RedisSettings(Section):
    title = "Redis and the task queue"

    redis_url: OptionalText = Field(
        default=None,
        description="Redis for the cache and the consumer's state (cursor, revs). "
        "Unset: an in-process Redis (embedded mode only; nothing survives a restart).",
    )
    docket_url: str = Field(
        default="memory://",
        description="Redis URL of the docket task queue. 'memory://' runs it in-process "
        "(embedded mode and tests); production points it at the shared Redis.",
    )
    docket_name: str = Field(
        default="plyr-recs", description="docket queue name (Redis key prefix)."
    )
