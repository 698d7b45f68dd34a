"""the Catalog port's two adapters, run through the same cases so they cannot drift.

behavioural tests take the `catalog` fixture, parametrized over the in-memory
catalog and PostgresCatalog on a fresh database (real PostgreSQL), both loaded
from samples/catalog.json plus the eligibility cases. PostgreSQL-only tests
count statements with asyncpg's query logger and take the server away.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from bench.loopback.catalog_rows import (
    ELIGIBILITY_CASES,
    PRIVATE_PLAYLIST_ID,
    SAMPLE_ARTIST_DID,
    EligibilityCase,
    load_into_postgres,
    private_playlist,
    with_eligibility_cases,
)
from bench.loopback.servers import PostgresServer, free_port
from engine.eligibility import (
    MAX_CHECKED_TRACK_IDS,
    MAX_PLAYLIST_ITEMS,
    MAX_TRACK_IDS_PER_CALL,
    MAX_TRACK_URIS_PER_CALL,
    labels_from_json,
    playlist_items_from_json,
)
from engine.memory_catalog import InMemoryCatalog
from engine.ports import Catalog, CatalogError, CatalogUnavailableError
from engine.postgres_catalog import (
    HYDRATE_SQL,
    LIST_FIRST_PLAYLISTS_SQL,
    LIST_PLAYLISTS_AFTER_SQL,
    RESOLVE_PLAYLIST_AND_TRACKS_SQL,
    RESOLVE_TRACKS_SQL,
    PostgresCatalog,
    is_unavailable,
)
from engine.types import PlaylistRef, PlaylistRow, Track
from tests.support.samples import CATALOG_PATH, load_catalog

SAMPLE = load_catalog()
SAMPLE_TRACK_URIS = {track["id"]: track["atproto_record_uri"] for track in SAMPLE["tracks"]}
UNKNOWN_TRACK_URI = f"at://{SAMPLE_ARTIST_DID}/fm.plyr.track/3zzzzzzzzzzzz"
# a second row with track 7's record URI: the schema does not forbid it.
DUPLICATE_URI_TRACK_ID = 5007


def world(*, for_postgres: bool) -> dict[str, Any]:
    """the sample catalogue, the eligibility cases, a private playlist, a duplicated URI."""
    data = with_eligibility_cases(SAMPLE, for_postgres=for_postgres)
    data["tracks"].append(
        {
            "id": DUPLICATE_URI_TRACK_ID,
            "title": "a re-ingested track 7",
            "artist_did": SAMPLE_ARTIST_DID,
            "atproto_record_uri": SAMPLE_TRACK_URIS[7],
        }
    )
    data["playlists"].append(
        private_playlist([SAMPLE_TRACK_URIS[3], UNKNOWN_TRACK_URI, SAMPLE_TRACK_URIS[1]])
    )
    return data


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.integration)])
def catalog_dsn(request: pytest.FixtureRequest) -> str | None:
    """None for the in-memory world; a fresh database's DSN for the PostgreSQL one."""
    if request.param == "memory":
        return None
    dsn: str = request.getfixturevalue("postgres_dsn")
    return dsn


@pytest.fixture
async def catalog(catalog_dsn: str | None) -> AsyncIterator[Catalog]:
    if catalog_dsn is None:
        yield InMemoryCatalog.from_json(world(for_postgres=False))
        return
    await load_into_postgres(catalog_dsn, world(for_postgres=True))
    async with await PostgresCatalog.connect(catalog_dsn, pool_size=2) as postgres:
        yield postgres


def world_cases(catalog: Catalog) -> list[EligibilityCase]:
    in_postgres = isinstance(catalog, PostgresCatalog)
    return [case for case in ELIGIBILITY_CASES if case.in_postgres or not in_postgres]


# --- eligibility -------------------------------------------------------------------


async def test_every_eligibility_case(catalog: Catalog) -> None:
    wrong = []
    for case in world_cases(catalog):
        surfaced = [track.id for track in await catalog.hydrate([case.track_id])]
        if surfaced != ([case.track_id] if case.eligible else []):
            wrong.append(f"{case.name}: expected eligible={case.eligible}, hydrate gave {surfaced}")
    assert wrong == []


async def test_hydrating_all_cases_at_once_keeps_the_eligible_in_order(catalog: Catalog) -> None:
    cases = list(reversed(world_cases(catalog)))
    hydrated = await catalog.hydrate([case.track_id for case in cases])
    assert [track.id for track in hydrated] == [case.track_id for case in cases if case.eligible]


async def test_eligible_ids_agrees_with_hydrate_on_every_case(catalog: Catalog) -> None:
    cases = world_cases(catalog)
    unknown = 987_654  # no row: withdrawn as surely as a takedown
    asked = [case.track_id for case in cases] + [unknown, 1, 1]
    eligible = await catalog.eligible_ids(asked)
    assert eligible == {case.track_id for case in cases if case.eligible} | {1}
    assert await catalog.eligible_ids([]) == set()
    with pytest.raises(ValueError, match="at most"):
        await catalog.eligible_ids(range(MAX_CHECKED_TRACK_IDS + 1))


def test_every_rule_has_both_answers_among_the_cases() -> None:
    # a guard on the data itself: a case list that lost its ineligible half tests nothing.
    assert {case.eligible for case in ELIGIBILITY_CASES} == {True, False}
    assert len({case.track_id for case in ELIGIBILITY_CASES}) == len(ELIGIBILITY_CASES)


# --- hydrate -----------------------------------------------------------------------


async def test_hydrate_gives_the_five_fields(catalog: Catalog) -> None:
    assert await catalog.hydrate([1]) == [
        Track(
            id=1,
            title="track 1",
            artist_handle="nova.bsky.social",
            artist_display_name="Nova",
            image_url="https://images.example/track1.webp",
        )
    ]


async def test_hydrate_keeps_the_given_order_and_drops_unknown_ids(catalog: Catalog) -> None:
    ineligible = next(case.track_id for case in ELIGIBILITY_CASES if not case.eligible)
    # the sample's own track 40 is unlisted and 39 carries a copyright label.
    track_ids = [7, 3, 999_999, 1, 2**40, ineligible, -5, 40, 38, 39, 2]
    hydrated = await catalog.hydrate(track_ids)
    assert [track.id for track in hydrated] == [7, 3, 1, 38, 2]


async def test_hydrate_keeps_each_track_once_at_its_first_position(catalog: Catalog) -> None:
    hydrated = await catalog.hydrate([3, 1, 3, 2, 1, 3])
    assert [track.id for track in hydrated] == [3, 1, 2]


async def test_hydrate_of_nothing_is_empty(catalog: Catalog) -> None:
    assert await catalog.hydrate([]) == []


async def test_hydrate_is_bounded(catalog: Catalog) -> None:
    at_the_bound = await catalog.hydrate(range(1, MAX_TRACK_IDS_PER_CALL + 1))
    assert [track.id for track in at_the_bound][:3] == [1, 2, 3]
    # duplicates do not count against the bound; distinct ids past it do.
    assert len(await catalog.hydrate([1] * (MAX_TRACK_IDS_PER_CALL + 1))) == 1
    with pytest.raises(ValueError, match="at most"):
        await catalog.hydrate(range(1, MAX_TRACK_IDS_PER_CALL + 2))


async def test_hydrate_rejects_ids_that_are_not_integers(catalog: Catalog) -> None:
    with pytest.raises(TypeError):
        await catalog.hydrate([1, 2.0])  # type: ignore[list-item]


# --- resolve_tracks ------------------------------------------------------------------


async def test_resolve_tracks_maps_known_uris_once(catalog: Catalog) -> None:
    uris = [SAMPLE_TRACK_URIS[2], UNKNOWN_TRACK_URI, SAMPLE_TRACK_URIS[5], SAMPLE_TRACK_URIS[2]]
    assert await catalog.resolve_tracks(uris) == {SAMPLE_TRACK_URIS[2]: 2, SAMPLE_TRACK_URIS[5]: 5}


async def test_resolve_tracks_ignores_eligibility(catalog: Catalog) -> None:
    # a playlist's own tracks describe its taste even when they may not be recommended.
    private_track = next(case for case in ELIGIBILITY_CASES if case.name == "visibility private")
    uri = f"at://{SAMPLE_ARTIST_DID}/fm.plyr.track/case{private_track.track_id}"
    assert await catalog.resolve_tracks([uri]) == {uri: private_track.track_id}


async def test_resolve_tracks_picks_the_lowest_id_for_a_shared_uri(catalog: Catalog) -> None:
    assert await catalog.resolve_tracks([SAMPLE_TRACK_URIS[7]]) == {SAMPLE_TRACK_URIS[7]: 7}


async def test_resolve_tracks_of_nothing_or_too_much(catalog: Catalog) -> None:
    assert await catalog.resolve_tracks([]) == {}
    many = [f"{UNKNOWN_TRACK_URI}{index}" for index in range(MAX_TRACK_URIS_PER_CALL - 1)]
    at_the_bound = [*many, SAMPLE_TRACK_URIS[1], SAMPLE_TRACK_URIS[1]]  # duplicates count once
    assert await catalog.resolve_tracks(at_the_bound) == {SAMPLE_TRACK_URIS[1]: 1}
    many.append(UNKNOWN_TRACK_URI)
    with pytest.raises(ValueError, match="at most"):
        await catalog.resolve_tracks([*many, SAMPLE_TRACK_URIS[1]])


# --- playlists ---------------------------------------------------------------------


async def test_resolve_playlist_of_the_sample_playlists(catalog: Catalog) -> None:
    for playlist in SAMPLE["playlists"]:
        assert await catalog.resolve_playlist(playlist["atproto_record_uri"]) == PlaylistRef(
            playlist_id=playlist["id"], owner_did=playlist["owner_did"]
        )


async def test_resolve_playlist_unknown(catalog: Catalog) -> None:
    unknown = f"at://{SAMPLE_ARTIST_DID}/fm.plyr.list/3zzzzzzzzzzzz"
    assert await catalog.resolve_playlist(unknown) is None


async def test_the_playlist_and_its_tracks_at_once_answer_as_each_alone(catalog: Catalog) -> None:
    unknown = f"at://{SAMPLE_ARTIST_DID}/fm.plyr.list/3zzzzzzzzzzzz"
    uris = [SAMPLE_TRACK_URIS[7], UNKNOWN_TRACK_URI, SAMPLE_TRACK_URIS[2], SAMPLE_TRACK_URIS[7]]
    for playlist_uri in [*(p["atproto_record_uri"] for p in SAMPLE["playlists"]), unknown]:
        for track_uris in (uris, [], [UNKNOWN_TRACK_URI]):
            both = await catalog.resolve_playlist_and_tracks(playlist_uri, track_uris)
            alone = (
                await catalog.resolve_playlist(playlist_uri),
                await catalog.resolve_tracks(track_uris),
            )
            assert both == alone
    playlist, tracks = await catalog.resolve_playlist_and_tracks(
        SAMPLE["playlists"][0]["atproto_record_uri"], uris
    )
    assert playlist is not None
    assert playlist.playlist_id == SAMPLE["playlists"][0]["id"]
    assert tracks == {SAMPLE_TRACK_URIS[7]: 7, SAMPLE_TRACK_URIS[2]: 2}  # the lowest id of 7's


async def test_get_playlist_public(catalog: Catalog) -> None:
    sample = SAMPLE["playlists"][0]
    row = await catalog.get_playlist(sample["id"])
    assert row is not None
    assert (row.playlist_id, row.owner_did, row.record_uri, row.record_cid) == (
        sample["id"],
        sample["owner_did"],
        sample["atproto_record_uri"],
        sample["atproto_record_cid"],
    )
    assert row.is_private is False
    assert row.items is None  # a public playlist's tracks live in its record
    assert row.updated_at.tzinfo is not None


async def test_get_playlist_private_reads_items_json(catalog: Catalog) -> None:
    row = await catalog.get_playlist(PRIVATE_PLAYLIST_ID)
    assert row == PlaylistRow(
        playlist_id=PRIVATE_PLAYLIST_ID,
        owner_did=SAMPLE_ARTIST_DID,
        record_uri=None,
        record_cid=None,
        is_private=True,
        updated_at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        items=(SAMPLE_TRACK_URIS[3], UNKNOWN_TRACK_URI, SAMPLE_TRACK_URIS[1]),
    )
    # the cache token is updated_at in ISO form: both worlds must spell it alike.
    assert row.updated_at.isoformat() == "2026-01-02T03:04:05.678901+00:00"
    assert isinstance(catalog, InMemoryCatalog | PostgresCatalog)
    assert catalog.rejected_playlist_items == 3


async def test_get_playlist_unknown(catalog: Catalog) -> None:
    assert await catalog.get_playlist("00000000-0000-0000-0000-000000000000") is None


# --- the in-memory catalog's own surface ------------------------------------------------


def test_load_reads_catalog_json() -> None:
    catalog = InMemoryCatalog.load(CATALOG_PATH)
    assert catalog.track_count == len(SAMPLE["tracks"])


def test_from_json_names_a_malformed_row() -> None:
    broken = {"artists": [{"did": "did:plc:a", "handle": 7, "display_name": "x"}]}
    with pytest.raises(ValueError, match="handle=7"):
        InMemoryCatalog.from_json(broken)


async def test_upsert_and_remove_playlist() -> None:
    catalog = InMemoryCatalog.from_json(SAMPLE)
    first_uri = f"at://{SAMPLE_ARTIST_DID}/fm.plyr.list/first"
    playlist = PlaylistRow(
        playlist_id="p1",
        owner_did=SAMPLE_ARTIST_DID,
        record_uri=first_uri,
        record_cid="bafyone",
        is_private=False,
        updated_at=datetime(2026, 1, 1, tzinfo=UTC),
        items=None,
    )
    catalog.upsert_playlist(playlist)
    assert await catalog.resolve_playlist(first_uri) == PlaylistRef("p1", SAMPLE_ARTIST_DID)

    moved_uri = f"at://{SAMPLE_ARTIST_DID}/fm.plyr.list/moved"
    moved = PlaylistRow(**{**_fields(playlist), "record_uri": moved_uri, "record_cid": "bafytwo"})
    catalog.upsert_playlist(moved)
    assert await catalog.resolve_playlist(first_uri) is None
    assert await catalog.get_playlist("p1") == moved

    taken = PlaylistRow(**{**_fields(playlist), "playlist_id": "p2", "record_uri": moved_uri})
    with pytest.raises(ValueError, match="already belongs"):
        catalog.upsert_playlist(taken)

    catalog.remove_playlist("p1")
    assert await catalog.get_playlist("p1") is None
    assert await catalog.resolve_playlist(moved_uri) is None
    catalog.remove_playlist("p1")  # forgetting twice is fine


def _fields(playlist: PlaylistRow) -> dict[str, Any]:
    return {name: getattr(playlist, name) for name in PlaylistRow.__dataclass_fields__}


# --- reading plyr.fm's JSON columns -----------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ([], frozenset()),
        (["porn", "lo-fi"], frozenset({"porn", "lo-fi"})),
        ("porn", None),
        ({"porn": True}, None),
        (None, None),
        (["lo-fi", 7], None),
    ],
)
def test_labels_from_json(raw: object, expected: frozenset[str] | None) -> None:
    assert labels_from_json(raw) == expected


def test_playlist_items_are_bounded() -> None:
    uri = f"at://{SAMPLE_ARTIST_DID}/fm.plyr.track/x"
    items, rejected = playlist_items_from_json([{"uri": uri}] * (MAX_PLAYLIST_ITEMS + 2))
    assert (len(items), rejected) == (MAX_PLAYLIST_ITEMS, 2)
    assert playlist_items_from_json([{"uri": "at://" + "x" * 600}]) == ((), 1)
    assert playlist_items_from_json({"uri": uri}) == ((), 1)
    assert playlist_items_from_json(None) == ((), 0)


# --- PostgreSQL only: statements, faults -------------------------------------------------


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (ConnectionRefusedError(111, "refused"), True),
        (TimeoutError(), True),
        (asyncpg.AdminShutdownError("terminating connection"), True),
        (asyncpg.CannotConnectNowError("the database system is starting up"), True),
        (asyncpg.ConnectionDoesNotExistError("connection was closed"), True),
        (asyncpg.InterfaceError("pool is closed"), True),
        (asyncpg.UndefinedTableError('relation "tracks" does not exist'), False),
        (asyncpg.exceptions.DataError("invalid input"), False),
    ],
)
def test_which_errors_mean_unavailable(error: BaseException, unavailable: bool) -> None:
    assert is_unavailable(error) is unavailable


class QueryLog:
    """the statements a pool's connections ran, minus the pool's own resets."""

    def __init__(self) -> None:
        self.queries: list[str] = []
        self._resets: set[str] = set()

    async def init(self, connection: asyncpg.Connection[asyncpg.Record]) -> None:
        self._resets.add(connection.get_reset_query())
        connection.add_query_logger(self._log)

    def _log(self, record: asyncpg.connection.LoggedQuery) -> None:
        if record.query not in self._resets:
            self.queries.append(record.query)

    async def drained(self) -> list[str]:
        # asyncpg hands each record to the loggers with call_soon: one loop turn.
        await asyncio.sleep(0)
        queries, self.queries = self.queries, []
        return queries


@pytest.mark.integration
async def test_each_call_is_one_statement(postgres_dsn: str) -> None:
    await load_into_postgres(postgres_dsn, world(for_postgres=True))
    log = QueryLog()
    # one connection, so its per-connection setup is paid once, below.
    pool = await asyncpg.create_pool(postgres_dsn, min_size=0, max_size=1, init=log.init)
    async with PostgresCatalog(pool) as catalog:
        # asyncpg looks up the int[] codec once per connection (a few statements);
        # that is a connection's cost, not a call's.
        await catalog.hydrate([1])
        assert (await log.drained())[-1] == HYDRATE_SQL

        track_ids = [*range(1, 41), *(case.track_id for case in ELIGIBILITY_CASES)]
        track_ids += range(7000, 7000 + 100 - len(track_ids))  # unknown ids
        assert len(track_ids) == 100
        hydrated = await catalog.hydrate(track_ids)
        eligible_cases = [case.track_id for case in ELIGIBILITY_CASES if case.eligible]
        assert [track.id for track in hydrated] == [*range(1, 39), *eligible_cases]
        assert await log.drained() == [HYDRATE_SQL]

        resolved = await catalog.resolve_tracks(list(SAMPLE_TRACK_URIS.values()))
        assert len(resolved) == len(SAMPLE_TRACK_URIS)
        assert await log.drained() == [RESOLVE_TRACKS_SQL]

        playlist_uri = world(for_postgres=True)["playlists"][0]["atproto_record_uri"]
        both = await catalog.resolve_playlist_and_tracks(playlist_uri, [SAMPLE_TRACK_URIS[1]])
        assert both[0] is not None
        assert both[1] == {SAMPLE_TRACK_URIS[1]: 1}
        assert await log.drained() == [RESOLVE_PLAYLIST_AND_TRACKS_SQL]

        assert await catalog.hydrate([]) == []
        assert await catalog.resolve_tracks([]) == {}
        assert await log.drained() == []


@pytest.mark.integration
async def test_a_page_after_the_first_is_an_index_range_scan_in_the_generic_plan(
    postgres_dsn: str,
) -> None:
    # asyncpg prepares every query and PostgreSQL soon keeps the generic plan: the
    # page's bound must be an index condition there, or each page of a reconcile
    # pass reads the table from its start (a pass quadratic in the playlists)
    await load_into_postgres(postgres_dsn, world(for_postgres=True))
    log = QueryLog()
    pool = await asyncpg.create_pool(postgres_dsn, min_size=0, max_size=1, init=log.init)
    async with PostgresCatalog(pool) as catalog:
        first = await catalog.list_playlists(after=None, limit=2)
        rest = await catalog.list_playlists(after=first[-1].playlist_id, limit=1000)
        assert await log.drained() == [LIST_FIRST_PLAYLISTS_SQL, LIST_PLAYLISTS_AFTER_SQL]
        ids = [row.playlist_id for row in [*first, *rest]]
        assert ids == sorted(set(ids))
        assert len(ids) == len(world(for_postgres=True)["playlists"])
    connection = await asyncpg.connect(
        postgres_dsn,
        server_settings={"plan_cache_mode": "force_generic_plan", "enable_seqscan": "off"},
    )
    try:
        await connection.execute(f"PREPARE page(text, int) AS {LIST_PLAYLISTS_AFTER_SQL}")
        plan = "\n".join(
            row[0]
            for row in await connection.fetch(
                f"EXPLAIN (COSTS OFF) EXECUTE page('{first[-1].playlist_id}', 200)"
            )
        )
    finally:
        await connection.close()
    assert "Index Cond: (id > $1)" in plan, plan
    assert "Filter" not in plan.split("playlists_pkey", 1)[1].split("->", 1)[0], plan


@pytest.mark.integration
async def test_both_adapters_agree_on_random_inputs(postgres_dsn: str) -> None:
    # a drift guard beyond the hand-picked cases: shuffled mixes of eligible,
    # ineligible, unknown and repeated ids and URIs must get identical answers.
    await load_into_postgres(postgres_dsn, world(for_postgres=True))
    memory = InMemoryCatalog.from_json(world(for_postgres=True))
    known_ids = [track["id"] for track in world(for_postgres=True)["tracks"]]
    id_pool = [*known_ids, 0, -1, 4242, 2**31, -(2**31) - 1]
    uri_pool = [*SAMPLE_TRACK_URIS.values(), UNKNOWN_TRACK_URI, ""]
    rng = random.Random(20260102)
    async with await PostgresCatalog.connect(postgres_dsn, pool_size=2) as postgres:
        for _ in range(40):
            track_ids = rng.choices(id_pool, k=rng.randint(0, 60))
            assert await postgres.hydrate(track_ids) == await memory.hydrate(track_ids)
            track_uris = rng.choices(uri_pool, k=rng.randint(0, 30))
            assert await postgres.resolve_tracks(track_uris) == await memory.resolve_tracks(
                track_uris
            )


async def stop_fast(server: PostgresServer) -> None:
    """stop PostgreSQL the way `pg_ctl -m fast` does: end the sessions, then the server.

    `PostgresServer.stop` asks for a smart shutdown, which waits for idle pool
    connections to leave; so the sessions are terminated first (each gets the
    57P01 a fast shutdown sends).
    """
    admin = await asyncpg.connect(server.dsn())
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
    finally:
        await admin.close()
    await asyncio.to_thread(server.stop)


@pytest.mark.integration
async def test_server_gone_is_unavailable_and_back_is_served(
    postgres_server: PostgresServer, postgres_dsn: str
) -> None:
    await load_into_postgres(postgres_dsn, world(for_postgres=True))
    async with await PostgresCatalog.connect(postgres_dsn, pool_size=2, timeout=2.0) as catalog:
        assert [track.id for track in await catalog.hydrate([1, 2])] == [1, 2]
        await stop_fast(postgres_server)
        try:
            with pytest.raises(CatalogUnavailableError):
                await catalog.hydrate([1, 2])
            with pytest.raises(CatalogUnavailableError):
                await catalog.resolve_playlist(SAMPLE["playlists"][0]["atproto_record_uri"])
        finally:
            # the postgres_dsn fixture drops its database through this server.
            await asyncio.to_thread(postgres_server.start)
        assert [track.id for track in await catalog.hydrate([1, 2])] == [1, 2]


@pytest.mark.integration
async def test_connecting_to_nothing_is_unavailable() -> None:
    with pytest.raises(CatalogUnavailableError):
        await PostgresCatalog.connect(f"postgresql://postgres@127.0.0.1:{free_port()}/none")


@pytest.mark.integration
async def test_a_missing_schema_is_a_permanent_error(postgres_server: PostgresServer) -> None:
    # the server's maintenance database has no plyr.fm tables: retrying cannot help.
    async with await PostgresCatalog.connect(postgres_server.dsn()) as catalog:
        with pytest.raises(CatalogError) as raised:
            await catalog.hydrate([1])
    assert not isinstance(raised.value, CatalogUnavailableError)
