"""the recommendation engine: strategy, k-means, fusion, and the ports it talks through.

    recommend(track_ids, store, *, limit, fusion, catalog, strays, max_per_artist)
        -> Recommendation      (its defaults are what the service serves)

no process concerns live here: no settings, no Redis, no HTTP server. besides
the maths (`strategy`, `kmeans`, `fusion`, `recommend`) and the ports (`ports`,
`types`, `eligibility`) with their adapters (`postgres_catalog`, `turbopuffer_store`;
embedded: `memory_catalog`, `exact_store`), it holds the contracts every part
shares: `cache` (the cache's keys and payloads), `keys` (the whole Redis keyspace
and each family's TTL), `errors` (transient and permanent faults, one classifier)
and `schema` (the part of plyr.fm's database it reads, `plyr.sql`).
"""

from engine.ports import (
    Catalog,
    CatalogError,
    CatalogUnavailableError,
    PermanentStoreError,
    TransientStoreError,
    VectorStore,
    VectorStoreError,
)
from engine.recommend import Recommendation, recommend
from engine.types import Candidate, FusionMode, PlaylistRef, PlaylistRow, Strategy, Track

__all__ = [
    "Candidate",
    "Catalog",
    "CatalogError",
    "CatalogUnavailableError",
    "FusionMode",
    "PermanentStoreError",
    "PlaylistRef",
    "PlaylistRow",
    "Recommendation",
    "Strategy",
    "Track",
    "TransientStoreError",
    "VectorStore",
    "VectorStoreError",
    "recommend",
]
