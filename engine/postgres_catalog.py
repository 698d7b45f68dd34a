"""the production Catalog: plyr.fm's PostgreSQL, read through an asyncpg pool.

plyr.fm's backend owns this database; this service only reads it. the pool's
sessions are opened read-only (`default_transaction_read_only`), so a write
slipping in would fail loudly instead of touching someone else's data.

every port call is one statement, whatever its input's size: no N+1 queries.
eligibility is the SQL fragment of engine.eligibility, applied in the same
statement that hydrates. failures are split the way a retry policy needs:
`CatalogUnavailableError` when the database is down, restarting, overloaded or
slow (worth retrying), `CatalogError` for the rest (a bug or a schema
mismatch: retrying will not help). the pool reconnects on its own once
PostgreSQL is back, so an instance survives a database restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from types import TracebackType
from typing import Final, Self

import asyncpg
import orjson

from engine.eligibility import (
    MAX_CHECKED_TRACK_IDS,
    SURFACEABLE_TRACK_SQL,
    distinct_track_ids,
    distinct_track_uris,
    playlist_items_from_json,
)
from engine.ports import (
    CatalogError,
    CatalogQueryError,
    CatalogUnavailableError,
    playlist_page_size,
)
from engine.types import PlaylistRef, PlaylistRow, Track

logger = logging.getLogger(__name__)

# tracks.atproto_record_uri is indexed but not unique: the lowest id wins, as in
# the in-memory catalog, so the answer does not depend on the plan.
RESOLVE_TRACKS_SQL: Final = """
SELECT DISTINCT ON (atproto_record_uri) atproto_record_uri, id
FROM tracks
WHERE atproto_record_uri = ANY($1::text[])
ORDER BY atproto_record_uri, id
"""

TRACK_URIS_SQL: Final = """
SELECT id, atproto_record_uri FROM tracks
WHERE id = ANY($1::int[]) AND atproto_record_uri IS NOT NULL
"""

RESOLVE_PLAYLIST_SQL: Final = """
SELECT id, owner_did FROM playlists WHERE atproto_record_uri = $1
"""

# both of the above in one statement (a recompute's first read): the playlist's row,
# if any, first (`uri` NULL), then a row per track URI plyr.fm knows
RESOLVE_PLAYLIST_AND_TRACKS_SQL: Final = """
(SELECT NULL::text AS uri, id AS playlist_id, owner_did, NULL::int AS track_id
 FROM playlists WHERE atproto_record_uri = $1)
UNION ALL
(SELECT DISTINCT ON (atproto_record_uri) atproto_record_uri, NULL, NULL, id
 FROM tracks
 WHERE atproto_record_uri = ANY($2::text[])
 ORDER BY atproto_record_uri, id)
"""

# a left join: a playlist whose owner row is missing still answers (without a PDS).
GET_PLAYLIST_SQL: Final = """
SELECT p.id, p.owner_did, p.atproto_record_uri, p.atproto_record_cid, p.is_private,
       p.updated_at, p.items_json, a.pds_url
FROM playlists AS p
LEFT JOIN artists AS a ON a.did = p.owner_did
WHERE p.id = $1
"""

# keyset pagination over the primary key: each page is an index range scan,
# however deep into the table it starts (OFFSET would rescan what it skips).
# two statements, not one `$1 IS NULL OR p.id > $1`: asyncpg prepares each query,
# and after a few runs PostgreSQL keeps its generic plan, in which that OR cannot
# bound the index scan: every page then read the table from its start (a pass was
# quadratic in the playlists; `python -m bench scale` read 12,400 rows for 2,000).
_LIST_PLAYLISTS: Final = """
SELECT p.id, p.owner_did, p.atproto_record_uri, p.atproto_record_cid, p.is_private,
       p.updated_at, a.pds_url
FROM playlists AS p
LEFT JOIN artists AS a ON a.did = p.owner_did
"""
LIST_FIRST_PLAYLISTS_SQL: Final = _LIST_PLAYLISTS + "ORDER BY p.id\nLIMIT $1\n"
LIST_PLAYLISTS_AFTER_SQL: Final = (
    _LIST_PLAYLISTS + "WHERE p.id > $1::text\nORDER BY p.id\nLIMIT $2\n"
)

# the planner's estimate, not a count(*): a progress bar's total needs no table scan.
COUNT_PLAYLISTS_SQL: Final = """
SELECT GREATEST(reltuples, 0)::bigint AS estimate, relpages
FROM pg_class WHERE oid = 'playlists'::regclass
"""
EXACT_COUNT_SQL: Final = "SELECT count(*) AS n FROM playlists"

# the input order is kept by joining on the ids' ordinal positions.
# the columns are Track's first five fields, in order (`PostgresCatalog.hydrate`)
HYDRATE_SQL: Final = f"""
SELECT t.id, t.title, a.handle, a.display_name, t.image_url
FROM unnest($1::int[]) WITH ORDINALITY AS wanted (track_id, position)
JOIN tracks AS t ON t.id = wanted.track_id
JOIN artists AS a ON a.did = t.artist_did
WHERE {SURFACEABLE_TRACK_SQL}
ORDER BY wanted.position
"""

# the withdrawal check: which of many ids are still surfaceable (primary-key lookups).
ELIGIBLE_IDS_SQL: Final = f"""
SELECT t.id
FROM tracks AS t
JOIN artists AS a ON a.did = t.artist_did
WHERE t.id = ANY($1::int[]) AND {SURFACEABLE_TRACK_SQL}
"""

# bounds the memory of which playlists were already warned about.
_MAX_WARNED_PLAYLISTS: Final = 10_000

# the faults that mean "the database is not answering right now".
_UNAVAILABLE_ERRORS: Final = (
    OSError,  # refused, reset, unreachable, DNS
    TimeoutError,  # connect, acquire or command timeout (asyncio.TimeoutError is this)
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08, and a connection lost mid-query
    asyncpg.CannotConnectNowError,  # 57P03: starting up or shutting down
    asyncpg.AdminShutdownError,  # 57P01: a fast shutdown or pg_terminate_backend
    asyncpg.CrashShutdownError,  # 57P02: another backend crashed
    asyncpg.QueryCanceledError,  # 57014: statement_timeout on the server
    asyncpg.TooManyConnectionsError,  # 53300
    asyncpg.InterfaceError,  # the client's own state: a closed connection or pool
    # a pooled connection a restarting server left mid-operation ("cannot switch to
    # state 12; another operation is in progress"); found by the reliability suite
    asyncpg.InternalClientError,
)


def is_unavailable(error: BaseException) -> bool:
    """whether `error` means the database is (perhaps briefly) unreachable."""
    # asyncpg's client-side DataError (an argument it cannot encode) is an
    # InterfaceError too, but it is a bug: retrying sends the same argument.
    if isinstance(error, ValueError):
        return False
    return isinstance(error, _UNAVAILABLE_ERRORS)


class PostgresCatalog:
    """a Catalog over plyr.fm's database (schema/plyr.sql)."""

    def __init__(self, pool: asyncpg.Pool[asyncpg.Record], *, timeout: float = 5.0) -> None:
        """wrap an open pool; `connect` builds one with the right settings."""
        self._pool = pool
        self._timeout = timeout
        # entries of private playlists' items_json skipped as malformed, per read.
        self.rejected_playlist_items = 0
        # the API reads a playlist on every request: warn once per playlist, not per read.
        self._warned_playlist_ids: set[str] = set()

    @classmethod
    # `timeout` configures the pool's per-step limits for its whole life, which
    # a caller's asyncio.timeout around this call could not do.
    async def connect(
        cls,
        dsn: str,
        *,
        pool_size: int = 5,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> Self:
        """open a pool of at most `pool_size` connections; `timeout` bounds each step.

        one connection is opened now, so a wrong DSN fails here. the pool keeps
        no floor (`min_size=0`): while the database is down, connections are
        retried when a call needs one, not by a background loop logging every
        second.
        """
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=0,
                init_size=1,
                max_size=pool_size,
                timeout=timeout,  # establishing a connection
                command_timeout=timeout,  # each statement
                server_settings={
                    "application_name": "plyr-recs",
                    "default_transaction_read_only": "on",
                },
                reset=_keep_session,
            )
        except (*_UNAVAILABLE_ERRORS, asyncpg.PostgresError) as error:
            raise _translated(error, "connect") from error
        return cls(pool, timeout=timeout)

    async def aclose(self) -> None:
        """close the pool, waiting at most `timeout` for calls in flight."""
        try:
            await asyncio.wait_for(self._pool.close(), self._timeout)
        except TimeoutError:
            logger.warning("catalog pool did not close in %.1fs; terminating it", self._timeout)
            self._pool.terminate()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- the Catalog port ------------------------------------------------------

    async def resolve_tracks(self, track_uris: Sequence[str]) -> dict[str, int]:
        wanted = distinct_track_uris(track_uris)
        if not wanted:
            return {}
        rows = await self._fetch("resolve_tracks", RESOLVE_TRACKS_SQL, wanted)
        return {row["atproto_record_uri"]: row["id"] for row in rows}

    async def track_uris(self, track_ids: Sequence[int]) -> dict[int, str]:
        wanted = sorted({int(track_id) for track_id in track_ids})
        if not wanted:
            return {}
        rows = await self._fetch("track_uris", TRACK_URIS_SQL, wanted)
        return {row["id"]: row["atproto_record_uri"] for row in rows}

    async def resolve_playlist(self, playlist_uri: str) -> PlaylistRef | None:
        rows = await self._fetch("resolve_playlist", RESOLVE_PLAYLIST_SQL, playlist_uri)
        if not rows:
            return None
        return PlaylistRef(playlist_id=rows[0]["id"], owner_did=rows[0]["owner_did"])

    async def resolve_playlist_and_tracks(
        self, playlist_uri: str, track_uris: Sequence[str]
    ) -> tuple[PlaylistRef | None, dict[str, int]]:
        wanted = distinct_track_uris(track_uris)
        rows = await self._fetch(
            "resolve_playlist_and_tracks", RESOLVE_PLAYLIST_AND_TRACKS_SQL, playlist_uri, wanted
        )
        playlist: PlaylistRef | None = None
        tracks: dict[str, int] = {}
        for row in rows:
            if row["uri"] is None:
                playlist = PlaylistRef(playlist_id=row["playlist_id"], owner_did=row["owner_did"])
            else:
                tracks[row["uri"]] = row["track_id"]
        return playlist, tracks

    async def get_playlist(self, playlist_id: str) -> PlaylistRow | None:
        rows = await self._fetch("get_playlist", GET_PLAYLIST_SQL, playlist_id)
        if not rows:
            return None
        row = rows[0]
        items: tuple[str, ...] | None = None
        if row["is_private"]:
            items = self._items(row["id"], row["items_json"])
        return PlaylistRow(
            playlist_id=row["id"],
            owner_did=row["owner_did"],
            record_uri=row["atproto_record_uri"],
            record_cid=row["atproto_record_cid"],
            is_private=row["is_private"],
            updated_at=row["updated_at"],
            items=items,
            owner_pds_url=row["pds_url"],
        )

    async def hydrate(self, track_ids: Sequence[int]) -> list[Track]:
        wanted = distinct_track_ids(track_ids)
        if not wanted:
            return []
        rows = await self._fetch("hydrate", HYDRATE_SQL, wanted)
        # HYDRATE_SQL selects Track's five fields in its order: a row is its arguments
        # (by name it cost ~3x the CPU, ~75 rows a recompute)
        return [Track(*row) for row in rows]

    async def eligible_ids(self, track_ids: Sequence[int]) -> set[int]:
        wanted = distinct_track_ids(track_ids, bound=MAX_CHECKED_TRACK_IDS)
        if not wanted:
            return set()
        rows = await self._fetch("eligible_ids", ELIGIBLE_IDS_SQL, wanted)
        return {row["id"] for row in rows}

    async def list_playlists(self, *, after: str | None, limit: int) -> list[PlaylistRow]:
        size = playlist_page_size(limit)
        if after is None:
            rows = await self._fetch("list_playlists", LIST_FIRST_PLAYLISTS_SQL, size)
        else:
            rows = await self._fetch("list_playlists", LIST_PLAYLISTS_AFTER_SQL, after, size)
        return [
            PlaylistRow(
                playlist_id=row["id"],
                owner_did=row["owner_did"],
                record_uri=row["atproto_record_uri"],
                record_cid=row["atproto_record_cid"],
                is_private=row["is_private"],
                updated_at=row["updated_at"],
                items=None,
                owner_pds_url=row["pds_url"],
            )
            for row in rows
        ]

    async def count_playlists(self) -> int:
        rows = await self._fetch("count_playlists", COUNT_PLAYLISTS_SQL)
        # a table never analysed has no estimate (relpages 0): count it then
        if rows and rows[0]["relpages"] > 0:
            return int(rows[0]["estimate"])
        rows = await self._fetch("count_playlists", EXACT_COUNT_SQL)
        return int(rows[0]["n"])

    # --- plumbing ----------------------------------------------------------------

    async def _fetch(self, operation: str, query: str, *args: object) -> list[asyncpg.Record]:
        try:
            async with self._pool.acquire(timeout=self._timeout) as connection:
                return await connection.fetch(query, *args)
        except (*_UNAVAILABLE_ERRORS, asyncpg.PostgresError) as error:
            raise _translated(error, operation) from error

    def _items(self, playlist_id: str, items_json: str | None) -> tuple[str, ...]:
        # asyncpg hands jsonb over as text unless a codec is set; parsing here
        # costs no per-connection codec setup.
        items, rejected = playlist_items_from_json(
            orjson.loads(items_json) if items_json is not None else None
        )
        if rejected:
            self.rejected_playlist_items += rejected
            if playlist_id not in self._warned_playlist_ids:
                if len(self._warned_playlist_ids) >= _MAX_WARNED_PLAYLISTS:
                    self._warned_playlist_ids.clear()
                self._warned_playlist_ids.add(playlist_id)
                logger.warning(
                    "playlist %s: %d malformed items_json entries skipped", playlist_id, rejected
                )
        return items


async def _keep_session(connection: asyncpg.Connection) -> None:
    """a connection going back to the pool is not reset: asyncpg's default sends one
    more statement (`RESET ALL`, `UNLISTEN *`, unlocks) per query, a round trip for
    nothing here, where no query sets, listens or locks anything. (an open
    transaction is still rolled back by asyncpg itself.)"""


def _translated(error: BaseException, operation: str) -> CatalogError:
    kind = CatalogUnavailableError if is_unavailable(error) else CatalogQueryError
    return kind(f"catalog {operation} failed: {type(error).__name__}: {error}")
