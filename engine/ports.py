"""the ports the engine talks through, as Protocols.

each has one real adapter (turbopuffer, PostgreSQL) and one embedded adapter
(an exact NumPy store, an in-memory catalog); the engine imports no client
library, only these shapes. their errors are of the two kinds in `engine.errors`
(transient, permanent): the adapters translate their library's errors into them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, TypeVar, runtime_checkable

from engine.errors import PermanentError, TransientError
from engine.types import Candidate, PlaylistRef, PlaylistRow, Track, Vector


class VectorStoreError(Exception):
    """a vector store call failed; see the two kinds below."""


class TransientStoreError(VectorStoreError, TransientError):
    """worth retrying: rate limits (429), server faults (5xx), timeouts, dropped connections."""


class PermanentStoreError(VectorStoreError, PermanentError):
    """retrying will not help: bad request, bad credentials, a malformed answer."""


class CatalogError(Exception):
    """a catalog call failed; see the two kinds below."""


class CatalogUnavailableError(CatalogError, TransientError):
    """worth retrying: the database is down, restarting or unreachable."""


class CatalogQueryError(CatalogError, PermanentError):
    """the database answered, with an error retrying will not change (a query it refuses)."""


class VectorStore(Protocol):
    """nearest-neighbour search over track embeddings (cosine distance)."""

    async def get_vectors(self, track_ids: Sequence[int]) -> dict[int, Vector]:
        """the embeddings of those ids that have one; ids without one are absent."""
        ...

    async def query_many(
        self,
        vectors: Sequence[Vector],
        *,
        top_k: int,
        exclude_ids: Iterable[int],
    ) -> list[list[Candidate]]:
        """one ranked candidate list (closest first, at most `top_k`) per query vector,
        never containing an id of `exclude_ids`."""
        ...


# a store's own form of one prepared nearest-neighbour search (`MultiQueryStore`)
SubQuery = TypeVar("SubQuery")


@runtime_checkable
class MultiQueryStore(VectorStore, Protocol[SubQuery]):
    """a `VectorStore` that can send searches of several callers in one request, each
    with its own exclusions and `top_k` (turbopuffer's multi-query), and says how
    much one request may carry. what `engine.coalescing_store` needs to share
    requests between concurrent recomputes."""

    @property
    def max_subqueries(self) -> int:
        """how many searches one `multi_query` request may carry."""
        ...

    @property
    def max_lookup_ids(self) -> int:
        """how many ids one `get_vectors` request may carry (more take several)."""
        ...

    def subqueries(
        self, vectors: Sequence[Vector], *, top_k: int, exclude_ids: Iterable[int]
    ) -> list[SubQuery]:
        """one search per vector, checked as `query_many` checks them (ValueError,
        TypeError) and ready to send: never sent by this call."""
        ...

    async def multi_query(self, subqueries: Sequence[SubQuery]) -> list[list[Candidate]]:
        """one request for 1..`max_subqueries` searches: each one's ranked candidates
        (closest first, at most its `top_k`, none of its excluded ids), in order."""
        ...


class Catalog(Protocol):
    """plyr.fm's view of tracks and playlists (read-only)."""

    async def resolve_tracks(self, track_uris: Sequence[str]) -> dict[str, int]:
        """track record URI -> tracks.id, for the URIs plyr.fm knows."""
        ...

    async def track_uris(self, track_ids: Sequence[int]) -> dict[int, str]:
        """tracks.id -> its record URI, for the ids plyr.fm knows (the reverse of
        `resolve_tracks`: what a playlist holds once one of them is added)."""
        ...

    async def resolve_playlist(self, playlist_uri: str) -> PlaylistRef | None:
        """the playlist a list record URI belongs to, or None if plyr.fm has no row yet."""
        ...

    async def resolve_playlist_and_tracks(
        self, playlist_uri: str, track_uris: Sequence[str]
    ) -> tuple[PlaylistRef | None, dict[str, int]]:
        """`resolve_playlist` and `resolve_tracks` at once (a recompute needs both:
        one round trip where the database is remote)."""
        ...

    async def get_playlist(self, playlist_id: str) -> PlaylistRow | None:
        """a playlist by its id (the API's {playlist_id}), or None."""
        ...

    async def hydrate(self, track_ids: Sequence[int]) -> list[Track]:
        """the eligible tracks among `track_ids`, in the given order.

        eligibility (DESIGN.md, "The engine") is applied here, so ineligible and
        unknown ids are simply absent from the result.
        """
        ...

    async def eligible_ids(self, track_ids: Sequence[int]) -> set[int]:
        """the ids among `track_ids` that may still be recommended (the rules of
        `hydrate`, without the rows): what the withdrawal check asks of every track in
        some live answer, in one statement. an id missing from the answer is withdrawn
        (taken down, relabelled, hidden, its artist deactivated, its row gone)."""
        ...

    async def list_playlists(self, *, after: str | None, limit: int) -> list[PlaylistRow]:
        """a page of every playlist, ordered by id, starting after the id `after`
        (keyset pagination: a page costs the same wherever it starts). `items` is
        None in every row (a private playlist's tracks are read with `get_playlist`
        when needed); `limit` is clamped to 1..MAX_PLAYLIST_PAGE."""
        ...

    async def count_playlists(self) -> int:
        """how many playlists there are (a progress bar's total; an estimate is fine)."""
        ...


# the largest page `list_playlists` returns, whatever the caller asks
MAX_PLAYLIST_PAGE = 1000


def playlist_page_size(limit: int) -> int:
    """`limit` clamped to what one `list_playlists` page may hold."""
    return max(1, min(int(limit), MAX_PLAYLIST_PAGE))


class TrackLookup(Protocol):
    """the part of a Catalog the engine's ranking loop needs."""

    async def hydrate(self, track_ids: Sequence[int]) -> list[Track]: ...


# a mapping from id to vector, as `get_vectors` returns
VectorsById = Mapping[int, Vector]
