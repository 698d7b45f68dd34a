"""the reconcile loop's decision per playlist: a pure function, tested on its table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.cache import private_token
from engine.types import PlaylistRow
from worker.recs.version import version_token
from worker.store.reconcile_probe import Probe
from worker.tasks.reconcile_decide import (
    MISSING,
    Action,
    Policy,
    Reason,
    decide,
    firehose_horizon,
)

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
POLICY = Policy(
    interval_seconds=300, margin_seconds=600, active_seconds=14 * 86_400, heal_grace_seconds=60
)
CID = "bafyreiaaaa"
LAST_PASS = NOW - timedelta(minutes=5)


def row(
    *, updated_ago: float = 30 * 86_400, private: bool = False, cid: str | None = CID
) -> PlaylistRow:
    return PlaylistRow(
        playlist_id="p1",
        owner_did="did:plc:x",
        record_uri=None if private else "at://did:plc:x/fm.plyr.list/3mabc",
        record_cid=None if private else cid,
        is_private=private,
        updated_at=NOW - timedelta(seconds=updated_ago),
        items=None,
    )


def probe(
    ttl_ms: int = MISSING,
    *,
    viewed: bool = False,
    lapsed: str | None = None,
    firehose: str | None = None,
) -> Probe:
    return Probe(ttl_ms, viewed, lapsed, firehose)


def verdict(
    playlist: PlaylistRow, seen: Probe, previous: datetime | None = LAST_PASS
) -> tuple[Action, Reason]:
    decided = decide(
        playlist,
        seen,
        now=NOW,
        policy=POLICY,
        previous_pass_started=previous,
        firehose_horizon=firehose_horizon(NOW, grace_seconds=60),
    )
    return decided.action, decided.reason


@pytest.mark.parametrize(
    ("playlist", "seen", "expected"),
    [
        (row(), probe(), (Action.COMPUTE, Reason.COLD)),
        (row(), probe(86_400_000), (Action.SKIP, Reason.WARM)),
        # expiring before the next pass could act: refreshed only if in use
        (row(), probe(60_000, viewed=True), (Action.REFRESH, Reason.REFRESH)),
        (row(updated_ago=3600), probe(60_000), (Action.REFRESH, Reason.REFRESH)),
        (row(), probe(60_000), (Action.SKIP, Reason.LAPSING)),
        (row(), probe(lapsed=CID), (Action.SKIP, Reason.LAPSED)),
        (row(), probe(lapsed=CID, viewed=True), (Action.COMPUTE, Reason.COLD)),
        (row(), probe(lapsed="bafyreiolder"), (Action.COMPUTE, Reason.COLD)),
        # changed since the last pass, long enough ago, and the consumer holds another CID
        (
            row(updated_ago=120),
            probe(firehose="bafyreiolder"),
            (Action.COMPUTE, Reason.MISSED_BY_FIREHOSE),
        ),
        (row(updated_ago=120), probe(), (Action.COMPUTE, Reason.MISSED_BY_FIREHOSE)),
        (row(updated_ago=120), probe(firehose=CID), (Action.COMPUTE, Reason.COLD)),
        # within the grace the firehose may still deliver it: the next pass decides
        (row(updated_ago=10), probe(), (Action.SKIP, Reason.RECENT)),
        (row(updated_ago=10), probe(firehose=CID), (Action.COMPUTE, Reason.COLD)),
        (row(updated_ago=120, private=True), probe(), (Action.COMPUTE, Reason.COLD)),
    ],
)
def test_the_decision_table(
    playlist: PlaylistRow, seen: Probe, expected: tuple[Action, Reason]
) -> None:
    assert verdict(playlist, seen) == expected


def test_a_first_pass_counts_nothing_as_missed() -> None:
    assert verdict(row(updated_ago=120), probe(), previous=None) == (Action.COMPUTE, Reason.COLD)


def test_a_version_left_to_the_firehose_is_counted_by_the_next_pass() -> None:
    # updated 40 s before the previous pass started: within its 60 s grace (recent
    # then), so this pass counts it missed rather than taking it for an old version
    previous = NOW - timedelta(seconds=30)
    missed = (Action.COMPUTE, Reason.MISSED_BY_FIREHOSE)
    assert verdict(row(updated_ago=70), probe(), previous=previous) == missed
    cold = (Action.COMPUTE, Reason.COLD)
    assert verdict(row(updated_ago=120), probe(), previous=previous) == cold


@pytest.mark.parametrize(
    ("playlist", "expected"),
    [
        (row(), CID),
        (row(private=True), None),
        (row(cid=None), None),
        (row(cid="b" * 300), "too long"),
    ],
)
def test_the_token_is_the_record_cid_or_the_update_time(
    playlist: PlaylistRow, expected: str | None
) -> None:
    token = version_token(playlist)
    if expected == "too long":  # past engine.cache.MAX_TOKEN_LENGTH: no key at all
        assert token is None
    elif expected is None:
        assert token == private_token(playlist.updated_at)
    else:
        assert token == playlist.record_cid


def test_a_version_its_pds_said_is_deleted_is_not_read_again_until_it_changes() -> None:
    gone = Probe(MISSING, True, None, None, gone_token=CID)
    assert verdict(row(), gone) == (Action.SKIP, Reason.DELETED)
    # plyr.fm names a new version (the record was written again): read as any other
    assert verdict(row(cid="bafyreibbbb"), gone) == (Action.COMPUTE, Reason.COLD)
