"""the cache: how long what it holds lives."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from worker.settings.base import Section


class CacheSettings(Section):
    title = "The cache"

    cache_ttl_seconds: Annotated[int, Field(ge=5, le=30 * 86_400)] = Field(
        default=86_400,
        description="how long every cache key lives (answers, version sets, states, the "
        "record-URI and delete markers). the reconcile loop refreshes an active playlist's "
        "entry before this runs out; tests and the journey benchmark shorten it.",
    )
