"""the vector store: turbopuffer, its shared query budget and each process's cache
of embeddings in front of it."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from engine.vector_cache import DEFAULT_MAX_VECTORS, DEFAULT_TTL_SECONDS
from worker.settings.base import OptionalSecret, OptionalText, Section


class TurbopufferSettings(Section):
    title = "turbopuffer and the vector cache"

    turbopuffer_api_key: OptionalSecret = Field(
        default=None,
        description="turbopuffer API key. Unset: the embedded exact vector store.",
    )
    turbopuffer_region: str = Field(
        default="gcp-us-central1", description="turbopuffer region (ignored with a base URL)."
    )
    turbopuffer_base_url: OptionalText = Field(
        default=None, description="turbopuffer endpoint; overrides the region (tests, proxies)."
    )
    turbopuffer_namespace: str = Field(
        default="plyr-tracks", description="namespace holding the CLAP embeddings."
    )
    turbopuffer_timeout_seconds: Annotated[float, Field(gt=0, le=120)] = Field(
        default=10.0, description="per-request timeout for turbopuffer calls."
    )
    turbopuffer_max_retries: Annotated[int, Field(ge=0, le=10)] = Field(
        default=2,
        description="retries inside the turbopuffer client for one call (429/5xx/timeouts); "
        "the worker's task retries sit above these.",
    )
    turbopuffer_max_concurrent_queries: Annotated[int, Field(ge=1, le=1024)] = Field(
        default=16,
        description="turbopuffer requests in flight at once across the whole deployment "
        "(every worker and API process; held in Redis): turbopuffer's per-namespace "
        "concurrency limit.",
    )
    turbopuffer_api_reserved_queries: Annotated[int, Field(ge=0, le=1023)] = Field(
        default=4,
        description="of those, slots only the API's inline computes may use, so a person "
        "waiting on a miss never queues behind the workers' background recomputes.",
    )
    vector_cache_size: Annotated[int, Field(ge=0, le=1_000_000)] = Field(
        default=DEFAULT_MAX_VECTORS,
        description="track embeddings each process keeps in memory (least recently used "
        "out first; 20,000 are about 45 MiB), so a recompute asks turbopuffer only for the "
        "tracks it has not seen lately. 0 turns the cache off.",
    )
    vector_cache_ttl_seconds: Annotated[float, Field(gt=0, le=86400)] = Field(
        default=DEFAULT_TTL_SECONDS,
        description="how long a cached embedding is used after it was fetched: a "
        "re-uploaded track's new embedding is served at most this late.",
    )
