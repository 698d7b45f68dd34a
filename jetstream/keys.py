"""the consumer's Redis keys, all under `plyr:jetstream:<list collection>:`.

the collection is part of the prefix so production and staging (which follows
its own NSID) can share one Redis without moving each other's cursor. what each
key holds and how long it lives (the cursor has no TTL, on purpose) is in the
keyspace registry, `engine.keys`.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.keys import JETSTREAM_ROOT

ROOT = JETSTREAM_ROOT

# the stats hash describes a running process; a week after the last write
# nobody is reading it.
STATS_TTL_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class JetstreamKeys:
    """key names for one list collection."""

    list_collection: str

    @property
    def prefix(self) -> str:
        return f"{ROOT}:{self.list_collection}"

    @property
    def cursor(self) -> str:
        return f"{self.prefix}:cursor"

    @property
    def cursor_v2(self) -> str:
        return f"{self.prefix}:cursor:v2"

    @property
    def stats(self) -> str:
        return f"{self.prefix}:stats"

    @property
    def epoch(self) -> str:
        return f"{self.prefix}:epoch"

    def rev(self, playlist_uri: str) -> str:
        return f"{self.prefix}:rev:{playlist_uri}"
