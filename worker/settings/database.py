"""plyr.fm's PostgreSQL database, read-only: the catalog and the playlists."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from worker.settings.base import OptionalSecret, Section


class DatabaseSettings(Section):
    title = "plyr.fm's database"

    database_url: OptionalSecret = Field(
        default=None,
        description="PostgreSQL DSN of plyr.fm's database (read-only). "
        "Unset: the embedded demo catalog.",
    )
    database_pool_size: Annotated[int, Field(ge=1, le=100)] = Field(
        default=5, description="asyncpg pool size per process."
    )
