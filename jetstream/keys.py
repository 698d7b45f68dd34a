"""the consumer's Redis keys, all under `plyr:jetstream:<list collection>:`.

the collection is part of the prefix so production and staging (which follows
its own NSID) can share one Redis without moving each other's cursor.

    plyr:jetstream:<collection>:cursor              time_us of the last event whose work is
                                                    done; no TTL (see below)
    plyr:jetstream:<collection>:cursor:v2           "<seq> <instance URL>": the v2 position,
                                                    valid on that instance only; no TTL
    plyr:jetstream:<collection>:rev:<playlist_uri>  "<rev> <cid>" of the last accepted
                                                    change; TTL `jetstream_rev_ttl_seconds`
    plyr:jetstream:<collection>:stats               hash of counters of the running consumer;
                                                    TTL `STATS_TTL_SECONDS`, refreshed on write
    plyr:jetstream:<collection>:epoch               a random id the consumer writes when it finds
                                                    none: gone means Redis lost the consumer's
                                                    state (`jetstream.state_watch`); TTL
                                                    `jetstream_rev_ttl_seconds`, refreshed on read

the cursor has no TTL on purpose: it is one small key, overwritten every
flush, and the only thing that says where to resume. if it expired during a
long outage the consumer would start at the live tail and silently lose every
playlist change in between; an old cursor, by contrast, is harmless (Jetstream
replays from its oldest retained event and the rev guard drops repeats).
"""

from __future__ import annotations

from dataclasses import dataclass

ROOT = "plyr:jetstream"

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
