"""the Redis keyspace: every family of key this service writes, and how long it lives.

one registry for the worker, the API and the consumer (they share one Redis):
the modules that read and write a family build its keys from the prefix named
here, and the test suite's key check (tests/conftest.py) fails any test that
leaves a key of ours without a TTL, unless its family is declared `ttl=None`
here with the reason, or that is not in any family at all.

    family              key                                         lives
    recommendations     plyr:recommendations:{playlist_id}:{token}  the cache TTL
    versions            plyr:recommendations-versions:{playlist_id} the cache TTL
    state               plyr:recommendations-state:{playlist_id}    the cache TTL
    playlist_id         plyr:recommendations-playlist:{list uri}    the cache TTL
    deleted             plyr:recommendations-deleted:{list uri}     the cache TTL
    lock                plyr:recompute-lock:{list uri}              the lock's lease
    withdrawn           plyr:withdrawn                              the cache TTL, refreshed
    withdrawn_firehose  plyr:withdrawn-firehose                     the cache TTL, refreshed
    withdrawn_gen       plyr:withdrawn-generation                   the cache TTL, refreshed
    withdrawal_live     plyr:withdrawal-live                        the cache TTL, refreshed
    withdrawal_carriers plyr:withdrawal-carriers:{track_id}         the cache TTL, refreshed
    withdrawal_round    plyr:withdrawal-round                       a minute, rewritten each round
    withdrawal_stats    plyr:withdrawal-stats                       a week, refreshed on write
    activity            plyr:recommendations-activity:{playlist_id} REFRESH_ACTIVE_DAYS
    lapsed              plyr:recommendations-lapsed:{playlist_id}   REFRESH_ACTIVE_DAYS
    reconcile           plyr:reconcile:{what}                       a week (or the pass's own bound)
    jetstream_cursor    plyr:jetstream:{collection}:cursor          none (see below)
    jetstream_cursor_v2 plyr:jetstream:{collection}:cursor:v2       none, like the cursor
    jetstream_rev       plyr:jetstream:{collection}:rev:{list uri}  the rev TTL (7 days)
    jetstream_stats     plyr:jetstream:{collection}:stats           7 days, refreshed on write
    jetstream_epoch     plyr:jetstream:{collection}:epoch           the rev TTL, refreshed on read

docket's own keys (under `DOCKET_NAME`) are docket's to manage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class KeyFamily:
    """one kind of key: its name, how to recognise it, and what bounds its life."""

    name: str
    pattern: re.Pattern[str]
    lifetime: str | None  # what sets the TTL; None: deliberately none (with `why`)
    why: str = ""


RECOMMENDATIONS_PREFIX: Final = "plyr:recommendations"
# a playlist's cached version tokens: a sorted set scored by each entry's expiry (Redis
# 7.0 keeps a small one compact: 200 B for one token, where the set of strings the
# previous release wrote, still read by a forget, takes 296)
TOKENS_PREFIX: Final = "plyr:recommendations-tokens"
VERSIONS_PREFIX: Final = "plyr:recommendations-versions"
STATE_PREFIX: Final = "plyr:recommendations-state"
PLAYLIST_ID_PREFIX: Final = "plyr:recommendations-playlist"
DELETED_PREFIX: Final = "plyr:recommendations-deleted"
LOCK_PREFIX: Final = "plyr:playlist-lock"  # one per playlist id (worker.store.lock)
# withdrawals (worker.store.withdrawn): sorted sets score their members by expiry,
# so each member lives the cache TTL from its last write, not the key's.
WITHDRAWN_KEY: Final = "plyr:withdrawn"
WITHDRAWN_FIREHOSE_KEY: Final = "plyr:withdrawn-firehose"
WITHDRAWN_GENERATION_KEY: Final = "plyr:withdrawn-generation"
WITHDRAWAL_LIVE_KEY: Final = "plyr:withdrawal-live"
WITHDRAWAL_CARRIERS_PREFIX: Final = "plyr:withdrawal-carriers"
WITHDRAWAL_ROUND_KEY: Final = "plyr:withdrawal-round"
WITHDRAWAL_STATS_KEY: Final = "plyr:withdrawal-stats"
ACTIVITY_PREFIX: Final = "plyr:recommendations-activity"
# turbopuffer's concurrency budget across processes (worker.store.store_budget): the
# slots, and the mark a worker that found none leaves for a second (speculative work
# stays off the budget meanwhile); one hash tag, so one script may touch both
STORE_SLOTS_KEY: Final = "plyr:{turbopuffer}:slots"
STORE_WANTED_KEY: Final = "plyr:{turbopuffer}:wanted"
# a playlist's likely next versions (it plus one track an answer showed), keyed by the
# set of track URIs, kept briefly (worker.store.speculative)
SPECULATIVE_PREFIX: Final = "plyr:recommendations-speculative"
LAPSED_PREFIX: Final = "plyr:recommendations-lapsed"
# the version of a playlist whose record its PDS said is deleted (plyr.fm's row
# outlives it): not read again by every pass (worker.store.reconcile_probe)
GONE_PREFIX: Final = "plyr:recommendations-gone"
RECONCILE_PREFIX: Final = "plyr:reconcile"
JETSTREAM_ROOT: Final = "plyr:jetstream"

_ANY = r".+"
_SEGMENT = r"[^:]+"
_COLLECTION = r"[A-Za-z0-9.-]+"

FAMILIES: Final = (
    KeyFamily(
        "recommendations",
        re.compile(rf"{RECOMMENDATIONS_PREFIX}:{_SEGMENT}:{_ANY}"),
        "the cache TTL",
    ),
    KeyFamily("tokens", re.compile(rf"{TOKENS_PREFIX}:{_ANY}"), "the cache TTL"),
    # the previous release's form of `tokens`: read and deleted by a forget, not written
    KeyFamily("versions", re.compile(rf"{VERSIONS_PREFIX}:{_ANY}"), "the cache TTL"),
    KeyFamily("state", re.compile(rf"{STATE_PREFIX}:{_ANY}"), "the cache TTL"),
    KeyFamily("playlist_id", re.compile(rf"{PLAYLIST_ID_PREFIX}:{_ANY}"), "the cache TTL"),
    KeyFamily("deleted", re.compile(rf"{DELETED_PREFIX}:{_ANY}"), "the cache TTL"),
    KeyFamily("lock", re.compile(rf"{LOCK_PREFIX}:{_ANY}"), "the lock's lease"),
    KeyFamily("withdrawn", re.compile(WITHDRAWN_KEY), "the cache TTL, refreshed on write"),
    KeyFamily("withdrawn_firehose", re.compile(WITHDRAWN_FIREHOSE_KEY), "the cache TTL, refreshed"),
    KeyFamily(
        "withdrawn_generation", re.compile(WITHDRAWN_GENERATION_KEY), "the cache TTL, refreshed"
    ),
    KeyFamily("withdrawal_live", re.compile(WITHDRAWAL_LIVE_KEY), "the cache TTL, refreshed"),
    KeyFamily(
        "withdrawal_carriers",
        # a track's carriers, and past the compact size its overflow shards (`:<shard>`)
        re.compile(rf"{WITHDRAWAL_CARRIERS_PREFIX}:-?[0-9]+(:[0-9]+)?"),
        "the cache TTL, refreshed on write",
    ),
    KeyFamily("withdrawal_round", re.compile(WITHDRAWAL_ROUND_KEY), "a minute, each round"),
    KeyFamily("withdrawal_stats", re.compile(WITHDRAWAL_STATS_KEY), "a week, refreshed"),
    # a playlist viewed through the API (or healed): its entry is refreshed before expiry
    KeyFamily("activity", re.compile(rf"{ACTIVITY_PREFIX}:{_ANY}"), "REFRESH_ACTIVE_DAYS"),
    KeyFamily(
        "speculative", re.compile(rf"{SPECULATIVE_PREFIX}:{_ANY}"), "SPECULATIVE_TTL_SECONDS"
    ),
    # turbopuffer's budget: the slots (a lease) and the workers' "wanted" (a second)
    KeyFamily(
        "store_budget",
        re.compile(f"{re.escape(STORE_SLOTS_KEY)}|{re.escape(STORE_WANTED_KEY)}"),
        "a slot's lease, or a second",
    ),
    # the version of an inactive playlist the reconcile let expire: not re-warmed
    KeyFamily("lapsed", re.compile(rf"{LAPSED_PREFIX}:{_ANY}"), "REFRESH_ACTIVE_DAYS"),
    # a version whose record is deleted on its PDS: not read again until it changes
    KeyFamily("gone", re.compile(rf"{GONE_PREFIX}:{_ANY}"), "a day"),
    # the reconcile loop's position, last pass and counters
    KeyFamily("reconcile", re.compile(rf"{RECONCILE_PREFIX}:{_ANY}"), "a week, refreshed on write"),
    KeyFamily(
        "jetstream_cursor",
        re.compile(rf"{JETSTREAM_ROOT}:{_COLLECTION}:cursor"),
        None,
        why="the only record of where to resume: had it expired during a long outage, the "
        "consumer would start at the live tail and silently skip every change in between. "
        "it is one small key, overwritten on every flush; an old one is harmless (Jetstream "
        "replays from its oldest event and the rev guard drops repeats).",
    ),
    KeyFamily(
        "jetstream_cursor_v2",
        re.compile(rf"{JETSTREAM_ROOT}:{_COLLECTION}:cursor:v2"),
        None,
        why="the v2 position (`<seq> <instance>`) beside the time cursor, for the same "
        "reason: one small key, overwritten on every flush, the only record of where a "
        "v2 instance resumes.",
    ),
    KeyFamily(
        "jetstream_rev",
        re.compile(rf"{JETSTREAM_ROOT}:{_COLLECTION}:rev:{_ANY}"),
        "JETSTREAM_REV_TTL_SECONDS",
    ),
    KeyFamily(
        "jetstream_stats",
        re.compile(rf"{JETSTREAM_ROOT}:{_COLLECTION}:stats"),
        "a week, refreshed on write",
    ),
    KeyFamily(
        "jetstream_epoch",
        re.compile(rf"{JETSTREAM_ROOT}:{_COLLECTION}:epoch"),
        "JETSTREAM_REV_TTL_SECONDS, refreshed on read",
    ),
)

# the prefix every key of ours starts with (anything else in Redis is docket's)
OURS: Final = "plyr:"


def family_of(key: str) -> KeyFamily | None:
    """the family a key belongs to, or None for a key no module should have written."""
    for family in FAMILIES:
        if family.pattern.fullmatch(key):
            return family
    return None
