"""the value types that cross the engine's ports.

plain frozen dataclasses: they are built in hot loops (one per candidate), so
they stay cheap (slots) and carry nothing but what the ports promise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

import numpy as np
import numpy.typing as npt

# the list record's own bound on items (DESIGN.md, "The list record"): the one
# place the 500 is written; every per-playlist bound derives from it.
MAX_LIST_ITEMS = 500

# one CLAP embedding; float32 is what turbopuffer stores and what the maths uses.
Vector = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Candidate:
    """a track the vector store proposed: `distance` is cosine distance, lower is closer."""

    track_id: int
    distance: float


MAX_BECAUSE_TITLE: Final = 300  # a title is short; a longer one in the cache is refused


@dataclass(frozen=True, slots=True)
class Because:
    """the playlist track that explains a recommendation (`engine.explain`)."""

    id: int
    title: str


@dataclass(frozen=True, slots=True)
class Track:
    """a recommendation as the API serves it (the five fields of DESIGN.md, "Output"),
    and, when known, the playlist track that explains it."""

    id: int
    title: str
    artist_handle: str
    artist_display_name: str
    image_url: str | None
    because: Because | None = None

    def explained_by(self, because: Because) -> Track:
        """this track with its explanation (`dataclasses.replace` would do, at ~4x the
        CPU: it is called for every track of every answer)."""
        return Track(
            self.id,
            self.title,
            self.artist_handle,
            self.artist_display_name,
            self.image_url,
            because,
        )

    def as_json(self) -> dict[str, object]:
        fields: dict[str, object] = {
            "id": self.id,
            "title": self.title,
            "artist_handle": self.artist_handle,
            "artist_display_name": self.artist_display_name,
            "image_url": self.image_url,
        }
        if self.because is not None:
            fields["because"] = {"id": self.because.id, "title": self.because.title}
        return fields


@dataclass(frozen=True, slots=True)
class PlaylistRef:
    """what resolving a playlist's record URI through plyr.fm's database gives."""

    playlist_id: str
    owner_did: str


@dataclass(frozen=True, slots=True)
class PlaylistRow:
    """a playlist as the API needs it: who owns it and which cache token is current.

    `record_cid` is None for a private playlist (no ATProto record); its cache
    token is then `updated_at` and its tracks live in `items` (plyr.fm's
    `items_json`, a list of track record URIs). `owner_pds_url` is where the
    owner's repo lives (plyr.fm's `artists.pds_url`, None if unknown): the API
    reads the list record there when it computes a version the worker has not.
    """

    playlist_id: str
    owner_did: str
    record_uri: str | None
    record_cid: str | None
    is_private: bool
    updated_at: datetime
    items: tuple[str, ...] | None
    owner_pds_url: str | None = None


class Strategy(StrEnum):
    """which branch of the adaptive engine ran (DESIGN.md, "The engine")."""

    NONE = "none"  # N = 0: nothing to recommend
    DIRECT = "direct"  # N = 1: the track's own embedding
    RRF = "rrf"  # N = 2..5: one query per track, fused
    KMEANS = "kmeans"  # N >= 6: one query per centroid, fused


class FusionMode(StrEnum):
    """how the per-query candidate lists become one ranking."""

    RRF = "rrf"  # plyr.fm's original reciprocal rank fusion
    PROPORTIONAL = "proportional"  # slots shared by cluster size (the default)
