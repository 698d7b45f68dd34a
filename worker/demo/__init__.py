"""the embedded demo's data: a generated catalogue and a generated session of edits.

`plyr-recs run` needs a world without plyr.fm's database, turbopuffer or the
firehose. this package makes one, deterministically from a seed:

    load_or_generate(cache_dir, *, tracks, artists, regions, dim, seed, progress)
        -> DemoCatalogue      (.catalog: InMemoryCatalog, .store: ExactStore, arrays)
    generate_session(catalogue, *, playlists, seed, start_time_us, spacing_ms)
        -> DemoSession        (.frames: Jetstream v1 JSON lines, .expected final states)

to keep plyr.fm's side in step while replaying, call `session.apply(i, catalog)`
just before sending frame i (see `worker.demo.session`).
"""

from worker.demo.catalogue import DemoCatalogue, Progress, TrackCase, generate_catalogue
from worker.demo.catalogue_cache import default_cache_dir, load_or_generate
from worker.demo.columns import CatalogueParams
from worker.demo.session import generate_session
from worker.demo.steps import (
    CatalogueEdit,
    DemoSession,
    ExpectedPlaylist,
    SessionStep,
    StepKind,
)

__all__ = [
    "CatalogueEdit",
    "CatalogueParams",
    "DemoCatalogue",
    "DemoSession",
    "ExpectedPlaylist",
    "Progress",
    "SessionStep",
    "StepKind",
    "TrackCase",
    "default_cache_dir",
    "generate_catalogue",
    "generate_session",
    "load_or_generate",
]
