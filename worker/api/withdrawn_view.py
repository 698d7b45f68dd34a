"""the API's copy of the withdrawn set, and the screening of every answer against it.

the copy stays current at no extra round trip: the set's generation and the last
check round's record ride along in every cache MGET (`worker.store.reads`), and
the set itself is fetched again only when its generation changed. so a hit is
still one round trip, and its screening a set lookup per track.

a cached answer is served screened by the copy only while the copy covers every
withdrawal older than `stale_seconds` (`engine.withdrawal.round_covers`): a
round began that recently, and after this process last regained Redis. else
(the worker's rounds stopped, Redis just came back, plyr.fm's database was down
for the rounds) the hit's tracks are checked with plyr.fm's database itself, one
statement: the hit costs a second query, it never carries a withdrawn track.
an answer computed inline is checked the same way as it is served (its
hydration may predate a withdrawal that landed while it ran: a miss can wait
seconds on turbopuffer or the owner's PDS), and screened by a freshly read copy.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from engine.cache import CachedRecommendations
from engine.keys import WITHDRAWAL_ROUND_KEY, WITHDRAWN_GENERATION_KEY
from engine.ports import Catalog, CatalogError
from engine.withdrawal import RoundRecord, round_covers, screened
from worker.store.withdrawn import read_riders, withdrawn_now

logger = logging.getLogger(__name__)

_NEVER: Final = object()  # a generation no read has returned yet


class WithdrawnView:
    """the withdrawn set as this process last read it, and whether it may be trusted."""

    def __init__(
        self,
        redis: Any,
        *,
        stale_seconds: float,
        clock: Callable[[], float] = time.time,
        loss_key: str | None = None,
    ) -> None:
        # read with every MGET: the set's generation, the last round's record, and
        # the consumer's Redis marker (`jetstream.state_watch`), whose change or
        # count going back says Redis lost data: the copy (and the round record)
        # may then lack withdrawals, so hits are checked with plyr.fm's database
        # until a round that began after the loss is published
        self.keys: tuple[str, ...] = (WITHDRAWN_GENERATION_KEY, WITHDRAWAL_ROUND_KEY)
        if loss_key is not None:
            self.keys += (loss_key,)
        self._loss_marker: tuple[str, int] | None = None
        self.redis = redis
        self.stale_seconds = stale_seconds
        self.clock = clock
        self.ids: frozenset[int] = frozenset()
        self.round: RoundRecord | None = None
        self.counts: Counter[str] = Counter()
        self._generation: object = _NEVER
        self._round_raw: bytes | None = None
        self._lost = False  # a cache fault since the last read that worked
        self._back_at = 0.0  # wall time Redis answered again after the last fault

    # --- keeping the copy current ---------------------------------------------------

    async def landed(self, values: Sequence[Any]) -> None:
        """what an MGET of `keys` returned (inside the read that asked for it)."""
        generation, round_raw = values[0], values[1]
        if len(values) > 2:
            self._watch_for_loss(values[2])
        if self._lost:
            self._lost = False
            self._back_at = self.clock()
        if round_raw != self._round_raw:
            self._round_raw = round_raw
            self.round = None if round_raw is None else RoundRecord.from_json(round_raw)
        if generation != self._generation:
            # the set changed (or this is the first read): one fetch, then reads go on
            # without it until the next change
            self.ids = frozenset(await withdrawn_now(self.redis, self.clock()))
            self._generation = generation
            self.counts["set_fetches"] += 1

    async def refresh(self) -> None:
        """read the generation and the round now (the caller bounds it)."""
        await self.landed(await read_riders(self.redis, self.keys))

    def _watch_for_loss(self, raw: bytes | str | None) -> None:
        if raw is None:
            return  # no consumer has looked yet (or the loss is total: the set is too)
        text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
        marker, _, count_text = text.partition(":")
        seen = (marker, int(count_text) if count_text.isdigit() else 0)
        before, self._loss_marker = self._loss_marker, seen
        if before is not None and (seen[0] != before[0] or seen[1] < before[1]):
            self.counts["redis_losses"] += 1
            self._back_at = self.clock()  # only a round begun after now is trusted

    def cache_lost(self) -> None:
        """Redis failed a read: until it answers again and a round begins after that,
        the copy may be missing withdrawals made meanwhile."""
        self._lost = True

    def covers(self) -> bool:
        return round_covers(
            self.round,
            now=self.clock(),
            stale_seconds=self.stale_seconds,
            not_before=self._back_at,
        )

    # --- screening --------------------------------------------------------------------

    def screen(self, value: CachedRecommendations) -> CachedRecommendations:
        """`value` without the tracks this copy knows to be withdrawn."""
        kept = screened(value, self.ids)
        if kept is not value:
            self.counts["answers_filtered"] += 1
        return kept

    async def screen_hit(
        self, value: CachedRecommendations, catalog: Catalog
    ) -> CachedRecommendations:
        """a cached answer made safe to serve: screened by the copy when it covers the
        present, else checked with plyr.fm's database too."""
        if self.covers():
            return self.screen(value)
        self.counts["hits_verified"] += 1
        return await self.checked(value, catalog)

    async def checked(
        self, value: CachedRecommendations, catalog: Catalog
    ) -> CachedRecommendations:
        """`value` without what plyr.fm's database no longer surfaces, nor what the copy
        holds (a deleted record plyr.fm may still have a row for): one statement. if the
        database fails, the copy alone (counted): the request's own read of the
        playlist, or the compute, just worked, so this is rare."""
        ids = value.ids()
        if not ids:
            return value
        try:
            eligible = await catalog.eligible_ids(ids)
        except CatalogError as error:
            self.counts["verify_failed"] += 1
            logger.warning("could not check an answer's tracks: %s", error)
            return self.screen(value)
        gone = {track_id for track_id in ids if track_id not in eligible}
        kept = screened(value, gone | self.ids)
        if kept is not value:
            self.counts["answers_filtered"] += 1
        return kept

    # --- /metrics ------------------------------------------------------------------------

    def collect(self) -> Iterable[Metric]:
        """this process's screening, and the service's withdrawal counters as the last
        round published them (the same figures from every API process)."""
        screening = CounterMetricFamily(
            "plyr_recs_api_withdrawn",
            "answer screening against withdrawn tracks: answers_filtered (served without "
            "some track), hits_verified (checked with plyr.fm's database: no recent round), "
            "verify_failed, set_fetches, redis_losses (Redis came back with older data).",
            labels=["kind"],
        )
        for kind in (
            "answers_filtered",
            "hits_verified",
            "verify_failed",
            "set_fetches",
            "redis_losses",
        ):
            screening.add_metric([kind], self.counts[kind])
        yield screening
        yield GaugeMetricFamily(
            "plyr_recs_api_withdrawn_tracks",
            "tracks in this process's copy of the withdrawn set.",
            value=len(self.ids),
        )
        record = self.round
        if record is None:
            return
        totals = CounterMetricFamily(
            "plyr_recs_withdrawals",
            "the workers' withdrawal counters, from the last check round: withdrawn:<source> "
            "(catalog, firehose), reinstated, refills (playlists recomputed because of a "
            "withdrawal), rounds, round_failures.",
            labels=["kind"],
        )
        for kind, count in sorted(record.totals.items()):
            totals.add_metric([kind], count)
        yield totals
        yield GaugeMetricFamily(
            "plyr_recs_withdrawal_round_seconds",
            "duration of the last check round (read the live tracks, one query, mark).",
            value=record.seconds,
        )
        yield GaugeMetricFamily(
            "plyr_recs_withdrawal_round_age_seconds",
            "how long ago the last check round began.",
            value=max(0.0, self.clock() - record.started_at),
        )
