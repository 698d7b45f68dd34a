"""a withdrawn track leaves every answer: each kind of withdrawal, each way an answer is
made (hit, a recompute in flight, an inline miss, the owner's last-known answer), the
firehose's track deletes, many at once, and a Redis outage.

real parts (tests.support.withdrawal_world): PostgreSQL from the schema, redis-server,
the turbopuffer client against the loopback server, docket, the API over ASGI. the
check round is run by the test, the refills by draining docket.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import asyncpg
import pytest

from bench.loopback.servers import PostgresServer
from engine.cache import ANSWER_TRACKS, MAX_CACHED_TRACKS
from engine.keys import WITHDRAWAL_LIVE_KEY, WITHDRAWN_KEY
from engine.withdrawal import Source
from tests.support.api_world import (
    CID_1,
    CID_2,
    PDS_TRACKS,
    PRIVATE_ID,
    PRIVATE_UPDATED_AT,
    PUBLIC_ID,
    URI_OF,
    internal,
)
from tests.support.pds_server import list_record
from tests.support.withdrawal_world import (
    ARTIST_OF,
    WithdrawalWorld,
    ids,
    w,
    world,
)
from worker.api.app import SOURCE_HEADER
from worker.recs.version import PlaylistVersion, rev_at
from worker.store.withdrawn import WithdrawalIndex, carriers_key
from worker.tasks.withdrawals import withdrawal_handler

pytestmark = pytest.mark.timeout(120)

ON_TRACK = "WHERE id = $1"
ON_ARTIST = "WHERE did = (SELECT artist_did FROM tracks WHERE id = $1)"
KINDS = {
    "takedown": f"UPDATE tracks SET moderation_override = 'takedown' {ON_TRACK}",
    "exclude": f"UPDATE tracks SET moderation_override = 'exclude' {ON_TRACK}",
    "copyright label": (
        f"UPDATE tracks SET operator_labels = '[\"copyright-violation\"]'::jsonb {ON_TRACK}"
    ),
    "adult label": f"UPDATE tracks SET self_labels = '[\"sexual\"]'::jsonb {ON_TRACK}",
    "unlisted": f"UPDATE tracks SET visibility = 'unlisted' {ON_TRACK}",
    "private": f"UPDATE tracks SET visibility = 'private' {ON_TRACK}",
    "pending": f"UPDATE tracks SET publish_state = 'pending' {ON_TRACK}",
    # a gate added after caching: a copyright gate rides on a public track, and plyr.fm's
    # discovery requires support_gate IS NULL
    "copyright gate": (
        f'UPDATE tracks SET support_gate = \'{{"type": "copyright"}}\'::jsonb {ON_TRACK}'
    ),
    "artist deactivated": f"UPDATE artists SET deactivated = true {ON_ARTIST}",
    "row gone": f"DELETE FROM tracks {ON_TRACK}",
}
TAKEDOWN = KINDS["takedown"]

__all__ = ["w", "world"]  # the shared fixtures


def version_of(track_uris: list[str], *, owner_did: str = "") -> PlaylistVersion:
    """the public playlist's version CID_1, as a worker's task would ensure it."""
    return PlaylistVersion(
        PUBLIC_ID, CID_1, rev_at(datetime.now(UTC)), owner_did, tuple(track_uris)
    )


def withdrawn_by(kind: str, target: int, offered: list[int]) -> set[int]:
    """the tracks among `offered` a withdrawal of `kind` aimed at `target` withdraws."""
    if kind == "artist deactivated":
        return {track for track in offered if ARTIST_OF[track] == ARTIST_OF[target]}
    return {target}


@pytest.mark.parametrize("kind", list(KINDS))
async def test_each_kind_of_withdrawal_leaves_the_cached_answer(
    w: WithdrawalWorld, kind: str
) -> None:
    first = await w.answer()
    assert first.headers[SOURCE_HEADER] == "computed"
    entry = await w.cached(PUBLIC_ID, CID_1)
    assert entry is not None
    offered = entry.ids()
    # the answer's 10, and spares beyond them (as many as the small sample catalogue has)
    assert ANSWER_TRACKS < len(offered) <= MAX_CACHED_TRACKS
    assert (await w.round()).withdrawn == frozenset()  # a round before: the view covers

    target = ids(first)[0]
    await w.sql(KINDS[kind], target)
    gone = withdrawn_by(kind, target, offered)
    # until the next round, the cached answer is what it was (a second at most)
    assert target in ids(await w.answer())

    report = await w.round()
    # the round re-checks the tracks entries keep whole (the first page); the ranks
    # kept by id are checked as the API hydrates them (eligibility applied)
    assert report.withdrawn == frozenset(gone) & frozenset(offered[:ANSWER_TRACKS])
    assert report.refills == 1
    screened = await w.answer()
    assert screened.headers[SOURCE_HEADER] == "hit"
    assert not set(ids(screened)) & gone
    assert ids(screened) == [track for track in offered if track not in gone][:10]

    await w.drain()  # the refill: the playlist is recomputed, its answer fills up again
    assert w.worker.counts["refill:done"] == 1
    refilled = await w.cached(PUBLIC_ID, CID_1)
    assert refilled is not None
    assert not set(refilled.ids()) & gone
    assert refilled.computed_at != entry.computed_at  # recomputed, not only screened
    # as full as the sample catalogue allows: with 35 kept it may hold no replacement
    assert len(refilled.ids()) >= len(offered) - len(gone)
    assert ids(await w.answer()) == refilled.ids()[:10]


async def test_a_rank_kept_by_id_is_checked_as_it_is_served(w: WithdrawalWorld) -> None:
    """ranks past the first page are kept by id and not indexed for the rounds: "more"
    hydrates them from plyr.fm's database, so one taken down since is not served,
    and one whose record was deleted (plyr.fm keeps the row a while) is screened by
    the withdrawn set. nothing is recomputed for either: the first page is intact."""
    await w.answer()
    entry = await w.cached(PUBLIC_ID, CID_1)
    assert entry is not None
    assert len(entry.tracks) == ANSWER_TRACKS
    assert len(entry.more) >= 4
    deep = [ranked.id for ranked in entry.more]
    # what the write indexed: the live tracks and their carriers, the first page alone
    redis = w.worker.redis
    live = {int(member) for member in await redis.zrange(WITHDRAWAL_LIVE_KEY, 0, -1)}
    assert live == {track.id for track in entry.tracks}
    assert await redis.exists(carriers_key(entry.tracks[0].id))
    assert not await redis.exists(carriers_key(deep[0]))
    more_page = await w.api.get(PUBLIC_ID, internal(w.world.alice.did), limit=10, offset=10)
    assert more_page.headers[SOURCE_HEADER] == "hit"
    assert ids(more_page) == deep[:10]
    assert all(track["title"] for track in more_page.json()["tracks"])  # hydrated whole

    taken_down, deleted = deep[0], deep[1]
    await w.sql(TAKEDOWN, taken_down)
    await WithdrawalIndex(w.worker.redis).mark([deleted], Source.FIREHOSE)
    report = await w.round()
    assert taken_down not in report.withdrawn  # not a live track: the round never asks
    assert report.refills == 0
    more_page = await w.api.get(PUBLIC_ID, internal(w.world.alice.did), limit=10, offset=10)
    assert ids(more_page) == [i for i in deep if i not in (taken_down, deleted)][:10]
    assert ids(await w.answer()) == entry.ids()[:ANSWER_TRACKS]  # the first page as it was

    # the database failing as "more" is hydrated: the whole tracks alone, no error
    w.api_catalog.hydrate_fails = True
    straddling = await w.api.get(PUBLIC_ID, internal(w.world.alice.did), limit=4, offset=8)
    assert straddling.status_code == 200
    assert straddling.json() == {
        "tracks": [t.as_json() for t in entry.tracks[8:]],
        "available": True,
    }
    metrics = (await w.api.client.get("/metrics")).text
    assert 'plyr_recs_api_more_tracks_total{result="failed"} 1.0' in metrics
    assert 'plyr_recs_api_more_tracks_total{result="hydrated"} 2.0' in metrics


async def test_a_lifted_takedown_is_unmarked_by_the_next_round(w: WithdrawalWorld) -> None:
    target = ids(await w.answer())[0]
    await w.sql(TAKEDOWN, target)
    assert (await w.round()).withdrawn == {target}
    await w.sql("UPDATE tracks SET moderation_override = NULL WHERE id = $1", target)
    report = await w.round()
    assert report.reinstated == {target}
    assert await WithdrawalIndex(w.api.redis).withdrawn_among([target]) == set()


async def test_a_hit_is_checked_with_the_database_while_no_round_covers_it(
    w: WithdrawalWorld,
) -> None:
    target = ids(await w.answer())[0]
    await w.sql(TAKEDOWN, target)
    # no round ran: the API cannot trust its copy, so it asks plyr.fm's database
    hit = await w.answer()
    assert hit.headers[SOURCE_HEADER] == "hit"
    assert target not in ids(hit)
    assert len(ids(hit)) == 10
    metrics = (await w.api.client.get("/metrics")).text
    assert 'plyr_recs_api_withdrawn_total{kind="hits_verified"}' in metrics
    assert 'plyr_recs_api_withdrawn_total{kind="answers_filtered"} 1.0' in metrics


async def test_a_worker_recompute_in_flight_is_caught_whichever_lands_first(
    w: WithdrawalWorld,
) -> None:
    track_uris = [URI_OF[track] for track in PDS_TRACKS]
    track_ids = await w.worker.recommender.track_ids(track_uris)
    expected, _ = await w.worker.recommender.compute(track_ids)
    target = expected.tracks[0].id

    # the recompute checked eligibility, then the takedown lands and a round runs:
    # the track is in no live answer yet, so the round cannot see it...
    w.worker_catalog.hold = True
    refresh = asyncio.create_task(
        w.worker.recommender.ensure(version_of(track_uris, owner_did="x"), lease=None)
    )
    await w.worker_catalog.held.wait()
    await w.sql(TAKEDOWN, target)
    assert (await w.round()).withdrawn == frozenset()
    w.worker_catalog.release.set()
    await refresh
    written = await w.cached(PUBLIC_ID, CID_1)
    assert written is not None
    assert target in written.ids()
    # ...but the write indexed it with the answer: the next round finds it and its carrier
    report = await w.round()
    assert report.withdrawn == {target}
    assert report.refills == 1
    assert target not in ids(await w.answer())


async def test_a_write_after_the_mark_is_written_without_the_track(w: WithdrawalWorld) -> None:
    track_uris = [URI_OF[track] for track in PDS_TRACKS]
    expected, _ = await w.worker.recommender.compute(
        await w.worker.recommender.track_ids(track_uris)
    )
    target = expected.tracks[0].id
    # a deleted record: plyr.fm still has the row, so the recompute hydrates the track
    await WithdrawalIndex(w.worker.redis).mark([target], Source.FIREHOSE)
    await w.worker.recommender.ensure(version_of(track_uris), lease=None)
    written = await w.cached(PUBLIC_ID, CID_1)
    assert written is not None
    assert written.ids() == [track.id for track in expected.tracks if track.id != target]


async def test_an_api_compute_in_flight_does_not_serve_a_track_withdrawn_meanwhile(
    w: WithdrawalWorld,
) -> None:
    w.api_catalog.hold = True
    request = asyncio.create_task(w.answer())
    await w.api_catalog.held.wait()
    hydrated = await w.cached(PUBLIC_ID, CID_1)
    assert hydrated is None  # still computing
    track_uris = [URI_OF[track] for track in PDS_TRACKS]
    expected, _ = await w.worker.recommender.compute(
        await w.worker.recommender.track_ids(track_uris)
    )
    target = expected.tracks[0].id
    await w.sql(TAKEDOWN, target)
    w.api_catalog.hold = False
    w.api_catalog.release.set()
    response = await request
    assert response.headers[SOURCE_HEADER] == "computed"
    assert target not in ids(response)
    # what it cached still carries it (nothing had marked it): the next round does
    assert (await w.round()).withdrawn == {target}
    assert target not in ids(await w.answer())


async def test_an_inline_miss_leaves_out_database_and_firehose_withdrawals(
    w: WithdrawalWorld,
) -> None:
    track_uris = [URI_OF[track] for track in PDS_TRACKS]
    expected, _ = await w.worker.recommender.compute(
        await w.worker.recommender.track_ids(track_uris)
    )
    taken_down, deleted = expected.tracks[0].id, expected.tracks[1].id
    await w.sql(TAKEDOWN, taken_down)
    await withdrawal_handler(w.docket)([(URI_OF[deleted], ARTIST_OF[deleted], time.time())])
    await w.drain()
    miss = await w.answer()
    assert miss.headers[SOURCE_HEADER] == "computed"
    assert not {taken_down, deleted} & set(ids(miss))
    assert len(ids(miss)) == 10


async def test_the_owners_last_known_answer_is_screened_while_the_database_is_down(
    w: WithdrawalWorld, postgres_server: PostgresServer
) -> None:
    target = ids(await w.answer())[0]
    await w.sql(TAKEDOWN, target)
    assert (await w.round()).withdrawn == {target}
    name = w.dsn.rsplit("/", 1)[1]
    admin = await asyncpg.connect(postgres_server.dsn())
    try:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()
    lost = await w.answer()
    assert lost.headers[SOURCE_HEADER] == "last_known"
    assert ids(lost)
    assert target not in ids(lost)


async def test_a_track_delete_counts_from_the_owners_repo_only(w: WithdrawalWorld) -> None:
    first = ids(await w.answer())
    assert (await w.round()).withdrawn == frozenset()
    forged, deleted = first[0], first[1]
    handler = withdrawal_handler(w.docket)
    now = time.time()
    await handler(
        [
            (URI_OF[forged], w.world.alice.did, now),  # alice's repo does not hold it
            (URI_OF[deleted], ARTIST_OF[deleted], now),
        ]
    )
    await w.drain()
    assert w.worker.counts["withdraw:foreign_repo"] == 1
    assert w.worker.counts["withdrawn:firehose"] == 1
    assert w.worker.counts["refill:done"] == 1
    answer = ids(await w.answer())
    assert forged in answer
    assert deleted not in answer
    # plyr.fm still has the row and surfaces it: the round does not reinstate it
    assert (await w.round()).reinstated == frozenset()
    assert deleted not in ids(await w.answer())


async def test_many_withdrawals_at_once_take_one_query_and_one_refill_each(
    w: WithdrawalWorld,
) -> None:
    public = ids(await w.answer(PUBLIC_ID))
    private = ids(await w.answer(PRIVATE_ID))
    assert (await w.round()).withdrawn == frozenset()
    targets = sorted(set(public[:6]) | set(private[:6]))
    await w.sql("UPDATE tracks SET moderation_override = 'takedown' WHERE id = ANY($1)", targets)
    calls = w.worker_catalog.eligible_calls
    report = await w.round()
    assert w.worker_catalog.eligible_calls == calls + 1
    assert report.withdrawn == frozenset(targets)
    assert report.refills == 2
    for playlist_id in (PUBLIC_ID, PRIVATE_ID):
        assert not set(ids(await w.answer(playlist_id))) & set(targets)
    await w.drain()
    assert w.worker.counts["refill:done"] == 2
    for playlist_id, token in ((PUBLIC_ID, CID_1), (PRIVATE_ID, PRIVATE_UPDATED_AT.isoformat())):
        entry = await w.cached(playlist_id, token)
        assert entry is not None
        assert not set(entry.ids()) & set(targets)
    members = await w.api.redis.zrange(WITHDRAWN_KEY, 0, -1)
    assert sorted(int(member) for member in members) == targets


async def test_a_takedown_inside_the_other_version_window_leaves_the_owners_answers(
    w: WithdrawalWorld,
) -> None:
    """the owner's PDS names a version plyr.fm has not ingested yet: the answer is kept
    in memory a few seconds, under no cache key, so no round's index has it. before:
    it was kept unscreened and served as kept, a taken-down track included."""
    record_uri = w.world.record_uri("3mpublic22222")
    w.world.pds.put(record_uri, CID_2, list_record([URI_OF[t] for t in PDS_TRACKS]))
    first = await w.answer()
    assert first.headers[SOURCE_HEADER] == "computed_uncached"
    target = ids(first)[0]
    again = await w.answer()
    assert again.headers[SOURCE_HEADER] == "pds_other_cid_recent"
    assert target in ids(again)
    await w.sql(TAKEDOWN, target)
    await w.round()
    after = await w.answer()
    assert after.headers[SOURCE_HEADER] == "pds_other_cid_recent"  # still no PDS read
    assert target not in ids(after)
    assert ids(after)[:9] == [track for track in ids(first) if track != target]
