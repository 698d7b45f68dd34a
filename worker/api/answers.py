"""what the API answers for a playlist: the cached answer of its current version,
else one computed inline through the worker's own code path.

the current version is the playlist's CID in plyr.fm's database (for a private
playlist, its `updated_at`). on a miss the tracks come from, in order:
the playlist's `items` (private), the worker's stored state when it names this
very version, else the owner's PDS. `Recommender.refresh` then computes and
writes the cache exactly as the worker would.

nothing here answers with an error: each dependency that fails turns into
`available: false` (never cached) or into computing without the cache, and
the reason is counted (`Degraded`). that includes plyr.fm's database: without
it neither the current version nor the owner can be read, so `last_known`
serves what the worker's state says instead (its owner, its newest version),
and nothing to anyone it cannot tell is the owner.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, TypeVar

import orjson

from engine.cache import CachedRecommendations
from engine.ports import CatalogError, VectorStoreError
from engine.types import PlaylistRow
from jetstream.faults import REDIS_UNAVAILABLE
from worker.api.breaker import CacheBreaker
from worker.api.metrics import ApiMetrics
from worker.api.speculation import Speculation
from worker.api.withdrawn_view import WithdrawnView
from worker.identity.pds import PdsRecords, RecordRejected, RecordUnavailable, pds_host
from worker.recs.recommender import Outcome, Recommender
from worker.recs.version import PlaylistVersion, rev_at, version_token
from worker.store.activity import ActivityLog
from worker.store.cache import RecommendationCache
from worker.store.lock import LeaseLost, PlaylistBusy, playlist_lock
from worker.store.reads import CoalescedReads

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

UNAVAILABLE_BODY: Final = orjson.dumps({"tracks": [], "available": False})
# what "Redis is not answering" looks like (`jetstream.faults`), or our own bound on
# a cache read (the builtin TimeoutError).
CACHE_FAULTS: Final = (*REDIS_UNAVAILABLE, TimeoutError)
CATALOG_LOG_INTERVAL_SECONDS: Final = 10.0


class Degraded(StrEnum):
    """why an answer is `available: false` although the playlist may have recommendations."""

    STORE_DISABLED = "store_disabled"  # no TURBOPUFFER_API_KEY: nothing can be computed
    STORE_FAILED = "store_failed"  # turbopuffer errored (after its client's retries)
    NO_RECORD = "no_record"  # a public playlist without a record URI: no tracks to read
    NO_PDS = "no_pds"  # plyr.fm does not know the owner's PDS
    PDS_UNREACHABLE = "pds_unreachable"  # refused, slow, or an error status
    RECORD_REJECTED = "record_rejected"  # the PDS answered with no usable playlist
    TIMEOUT = "timeout"  # the inline compute outlasted the request's budget
    BUSY = "busy"  # too many inline computes at once in this process
    CATALOG_FAILED = "catalog_failed"  # plyr.fm's database failed (none of its data is served)


@dataclass(frozen=True, slots=True)
class AnswerLimits:
    """the bounds of the API's work per request (DESIGN.md: every limit explicit)."""

    # a cache read slower than this counts as Redis being down: a hit takes ~0.2 ms,
    # and the client's own socket timeout (5 s) is far too long for a request.
    cache_timeout_seconds: float = 0.5
    # after `cache_failures_to_open` Redis faults in a row (each a read the client
    # already retried on a fresh connection), skip the cache for this long instead
    # of paying the fault on every request; then try again (`worker.api.breaker`).
    cache_retry_seconds: float = 2.0
    cache_failures_to_open: int = 3
    # the most a request waits for an inline compute; the compute itself carries
    # on and fills the cache for the next request.
    miss_timeout_seconds: float = 10.0
    # distinct playlists computed inline at once per process; past it, misses
    # answer `available: false` at once (shedding load instead of queueing it).
    max_concurrent_computes: int = 32
    # of those, at most this many for one owner's playlists: one account (or its
    # PDS) cannot take the whole budget. a person looks at one playlist at a time.
    max_computes_per_owner: int = 4
    # and at most this many waiting on one PDS host: accounts whose PDS hangs (a host
    # the client has not yet learnt to refuse) cannot take the slots everyone needs
    max_computes_per_pds_host: int = 8
    # a PDS whose record is not the version plyr.fm's database names: its answer is
    # never cached in Redis (only the database's version is; a lying PDS would mint
    # a new 24 h key per request) but kept in memory this long, so repeated
    # requests cost no PDS read and no compute. plyr.fm's ingest lags by seconds.
    unversioned_answer_seconds: float = 30.0
    max_unversioned_answers: int = 1024
    # the playlist's lock, held while an inline compute writes its answer (renewed
    # while held): the same lock every writer takes (`worker.store.lock`)
    miss_lease_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class Answer:
    """an answer and where it came from (a header and a metric label)."""

    value: CachedRecommendations | None  # None: `available: false`, not cached
    source: str
    # computed from a PDS naming another version than plyr.fm's database: kept in
    # memory a few seconds (screened), cached under no key
    unversioned: bool = False

    def body(self, limit: int, offset: int = 0) -> bytes:
        if self.value is None:
            return UNAVAILABLE_BODY
        return orjson.dumps(self.value.response(limit, offset))


@dataclass(frozen=True, slots=True)
class LastKnown:
    """what the cache says of a playlist when plyr.fm's database cannot."""

    owner_did: str | None  # None: nobody is known to own it here (never computed)
    answer: Answer


@dataclass(frozen=True, slots=True)
class _TrackList:
    track_uris: Sequence[str]
    token: str | None  # the version these tracks are; None: answer, do not cache
    source: str  # items, state, pds, or pds_other_cid


class Answers:
    """answers recommendation requests for one app (no state outside the instance)."""

    def __init__(
        self,
        *,
        cache: RecommendationCache,
        recommender: Recommender,
        pds: PdsRecords,
        metrics: ApiMetrics,
        limits: AnswerLimits | None = None,
        withdrawn: WithdrawnView | None = None,
        activity: ActivityLog | None = None,
    ) -> None:
        self.cache = cache
        # views, for the reconcile loop's "active" (written in the background, batched)
        self.activity = activity
        self.recommender = recommender
        self.limits = limits or AnswerLimits()
        # every answer is screened against withdrawn tracks (None: not at all, only
        # for `python -m bench withdrawn`'s unscreened baseline)
        self.withdrawn = withdrawn
        if withdrawn is not None:
            metrics.registry.register(withdrawn)
        # the hot path: hits read through one MGET per event-loop turn (the withdrawn
        # set's generation and round record ride along)
        self.reads = CoalescedReads(
            cache, timeout_seconds=self.limits.cache_timeout_seconds, rider=withdrawn
        )
        self.pds = pds
        self.metrics = metrics
        self.breaker = CacheBreaker(
            failures_to_open=self.limits.cache_failures_to_open,
            open_seconds=self.limits.cache_retry_seconds,
        )
        self._catalog_log_after = 0.0  # monotonic time before which catalog faults are quiet
        # one inline compute per (playlist, version): concurrent misses share it.
        self._computes: dict[tuple[str, str], asyncio.Task[Answer]] = {}
        # the likely next versions, computed in the background behind real misses
        self.speculation = Speculation(
            cache=cache, recommender=recommender, busy=lambda: bool(self._computes)
        )
        self._owner_computes: Counter[str] = Counter()  # owner DID -> computes running
        self._host_computes: Counter[str] = Counter()  # PDS host -> computes running
        # (playlist id, database version) -> (an answer from a PDS of another version,
        # until when); insertion order is age.
        self._unversioned: dict[tuple[str, str], tuple[Answer, float]] = {}

    async def aclose(self) -> None:
        """cancel the computes still running, close the PDS client."""
        await self.speculation.aclose()
        computes = list(self._computes.values())
        for compute in computes:
            compute.cancel()
        await asyncio.gather(*computes, return_exceptions=True)
        await self.reads.aclose()
        if self.activity is not None:
            await self.activity.aclose()
        await self.pds.aclose()

    async def drain(self) -> None:
        """wait for the inline computes running now (their waiters may have given up)."""
        await asyncio.gather(*self._computes.values(), return_exceptions=True)

    @property
    def computes_in_flight(self) -> int:
        return len(self._computes)

    async def answer(self, playlist: PlaylistRow) -> Answer:
        if self.activity is not None:
            self.activity.touch(playlist.playlist_id)
        token = version_token(playlist)
        cache_up = token is not None and self._cache_up()
        if cache_up:
            assert token is not None
            try:
                # bounded by the batch's own timeout (one timer per MGET, not per request)
                cached = await self.reads.get(playlist.playlist_id, token)
            except CACHE_FAULTS as error:
                self._cache_failed(error)
                cache_up = False
            else:
                self.breaker.succeeded()
                if cached is not None:
                    self.metrics.hit.inc()
                    self.metrics.hit_answer.inc()
                    if self.withdrawn is not None:
                        cached = await self.withdrawn.screen_hit(cached, self.recommender.catalog)
                    return Answer(cached, "hit")
        self.metrics.cache.labels("miss" if cache_up else "bypass").inc()
        key = (playlist.playlist_id, token or "")
        recent = await self._recent_unversioned(key, playlist)
        if recent is not None:
            self.metrics.answers.labels("pds_other_cid_recent").inc()
            return recent
        answer = await self._screened(await self._shared_compute(playlist, token))
        if answer.unversioned and answer.value is not None:
            # kept only as served: screened first, like every answer kept anywhere
            self._remember_unversioned(key, answer)
        self.metrics.answers.labels(answer.source).inc()
        return answer

    async def reaching(self, answer: Answer, limit: int, offset: int) -> Answer:
        """`answer` with the ranks `limit` from `offset` needs whole: an entry keeps
        the first page whole and the ranks after it by id (`CachedRecommendations`),
        hydrated here in one statement, eligibility applied (screened already: the
        withdrawn set's screen covers the ids). if the database fails, the whole
        tracks alone (counted): fewer tracks, never an error."""
        value = answer.value
        if value is None or not value.reaches_past_whole(limit, offset):
            return answer
        try:
            hydrated = await self.recommender.catalog.hydrate(value.to_hydrate())
        except CatalogError as error:
            self.metrics.more_tracks.labels("failed").inc()
            self.catalog_failed(error)
            return answer
        self.metrics.more_tracks.labels("hydrated").inc()
        whole = value.with_more({track.id: track for track in hydrated})
        return Answer(whole, answer.source, unversioned=answer.unversioned)

    def served(self, playlist: PlaylistRow, answer: Answer, limit: int, offset: int) -> None:
        """an answer went to the playlist's owner, showing `limit` tracks from `offset`:
        the versions "+" would make next are computed in the background."""
        token = version_token(playlist)
        if token is None or answer.value is None or not answer.value.available:
            return
        if answer.source == "last_known" or not self._cache_up():
            return
        shown = answer.value.ids()[offset : offset + limit]
        self.speculation.after_answer(playlist.playlist_id, token, shown)

    async def last_known(self, playlist_id: str) -> LastKnown:
        """the playlist's newest computed answer and its owner, from the worker's state:
        what can be served while plyr.fm's database is down. the caller checks the
        owner; an unknown owner comes with `available: false` and nothing else."""
        failed = LastKnown(None, Answer(None, Degraded.CATALOG_FAILED))
        if not self._cache_up():
            return failed
        try:
            state = await self._bounded(self.cache.get_state(playlist_id))
            if state is None or not state.owner_did:
                return failed
            value = await self.reads.get(playlist_id, state.token)
        except CACHE_FAULTS as error:
            self._cache_failed(error)
            return failed
        if value is None:
            return LastKnown(state.owner_did, failed.answer)
        # plyr.fm's database is down: the copy of the withdrawn set is all there is
        if self.withdrawn is not None:
            value = self.withdrawn.screen(value)
        return LastKnown(state.owner_did, Answer(value, "last_known"))

    def catalog_failed(self, error: BaseException) -> None:
        """count a fault of plyr.fm's database; log it at most every few seconds (an
        outage meets every request)."""
        self.metrics.catalog_faults.inc()
        now = time.monotonic()
        if now >= self._catalog_log_after:
            self._catalog_log_after = now + CATALOG_LOG_INTERVAL_SECONDS
            logger.warning("plyr.fm's database failed, answering from the cache: %s", error)

    async def _screened(self, answer: Answer) -> Answer:
        """a computed answer without what was withdrawn while it was computed: checked
        with plyr.fm's database, and screened by the copy read again (unless Redis is
        down: then by the copy there is)."""
        if answer.value is None or self.withdrawn is None:
            return answer
        if answer.source == Outcome.SPECULATIVE:
            # computed before the edit and screened at both its writes: served like a
            # hit (the copy when a round covers the present, else the database)
            value = await self.withdrawn.screen_hit(answer.value, self.recommender.catalog)
            return Answer(value, answer.source)
        if self._cache_up():
            try:
                await self._bounded(self.withdrawn.refresh())
            except CACHE_FAULTS as error:
                self._cache_failed(error)
        value = await self.withdrawn.checked(answer.value, self.recommender.catalog)
        return Answer(value, answer.source, unversioned=answer.unversioned)

    # --- the miss --------------------------------------------------------------------

    async def _shared_compute(self, playlist: PlaylistRow, token: str | None) -> Answer:
        if self.recommender.store is None:
            return Answer(None, Degraded.STORE_DISABLED)
        key = (playlist.playlist_id, token or "")
        compute = self._computes.get(key)
        if compute is None:
            owner = playlist.owner_did
            # a public playlist's tracks may have to come from its owner's PDS
            host = (
                pds_host(playlist.owner_pds_url)
                if playlist.owner_pds_url and not playlist.is_private
                else ""
            )
            if (
                len(self._computes) >= self.limits.max_concurrent_computes
                or self._owner_computes[owner] >= self.limits.max_computes_per_owner
                or (host and self._host_computes[host] >= self.limits.max_computes_per_pds_host)
            ):
                return Answer(None, Degraded.BUSY)
            compute = asyncio.create_task(self._compute(playlist, token))
            self._computes[key] = compute
            self._owner_computes[owner] += 1
            self._host_computes[host] += 1
            compute.add_done_callback(lambda done: self._landed(key, done, owner, host))
        try:
            async with asyncio.timeout(self.limits.miss_timeout_seconds):
                # shielded: a request that gives up (timeout, client gone) does not
                # cancel the compute the cache and the other waiters need.
                return await asyncio.shield(compute)
        except TimeoutError:
            return Answer(None, Degraded.TIMEOUT)

    def _landed(
        self, key: tuple[str, str], compute: asyncio.Task[Answer], owner: str, host: str
    ) -> None:
        if self._computes.get(key) is compute:
            del self._computes[key]
        for counts, who in ((self._owner_computes, owner), (self._host_computes, host)):
            counts[who] -= 1
            if counts[who] <= 0:
                del counts[who]
        if not compute.cancelled():
            # marks a failure as retrieved: the waiters re-raise it, and when they all
            # gave up already, asyncio must not log it as lost.
            compute.exception()

    async def _compute(self, playlist: PlaylistRow, token: str | None) -> Answer:
        started = time.perf_counter()
        try:
            tracks = await self._track_list(playlist, token)
            if isinstance(tracks, Answer):
                return tracks
            self.metrics.track_sources.labels(tracks.source).inc()
            answer = await self._recommend(playlist, tracks)
            if tracks.source == "pds_other_cid":
                return Answer(answer.value, answer.source, unversioned=True)
            return answer
        except VectorStoreError as error:
            # never cached: the next request tries again (refresh writes only after computing).
            logger.warning(
                "inline compute of %s: vector store failed: %s", playlist.playlist_id, error
            )
            return Answer(None, Degraded.STORE_FAILED)
        except CatalogError as error:
            # the playlist was read, then the database went (tracks, hydration)
            self.catalog_failed(error)
            return Answer(None, Degraded.CATALOG_FAILED)
        finally:
            self.metrics.compute_seconds.observe(time.perf_counter() - started)

    async def _track_list(self, playlist: PlaylistRow, token: str | None) -> _TrackList | Answer:
        if playlist.is_private:
            return _TrackList(playlist.items or (), token, "items")
        if playlist.record_uri is None:
            return Answer(None, Degraded.NO_RECORD)
        if token is not None and self._cache_up():
            try:
                state = await self._bounded(self.cache.get_state(playlist.playlist_id))
            except CACHE_FAULTS as error:
                self._cache_failed(error)
            else:
                # the worker's state is only good for the very version it names
                if state is not None and state.token == token:
                    return _TrackList(state.track_uris, token, "state")
        if playlist.owner_pds_url is None:
            return Answer(None, Degraded.NO_PDS)
        try:
            # the version scopes a refused record's memory: an owner's fix is read at once
            record = await self.pds.fetch(
                playlist.owner_pds_url, playlist.record_uri, version=token
            )
        except RecordRejected as rejected:
            logger.warning("list record of %s refused: %s", playlist.playlist_id, rejected.reason)
            return Answer(None, Degraded.RECORD_REJECTED)
        except RecordUnavailable as unavailable:
            logger.warning("owner's PDS of %s: %s", playlist.playlist_id, unavailable.reason)
            return Answer(None, Degraded.PDS_UNREACHABLE)
        if record.cid == token:
            return _TrackList(record.track_uris, token, "pds")
        # plyr.fm's ingest lags the PDS by seconds: answer from what the PDS holds,
        # but cache it under no key. the CID is the PDS's word, and a PDS that
        # answers a new one each time would make every request a compute and a
        # new 24 h key; the database's version gets cached when the worker or a
        # later request computes it. (`_unversioned` keeps it a few seconds.)
        logger.info(
            "playlist %s: PDS has %s, plyr.fm has %s", playlist.playlist_id, record.cid, token
        )
        return _TrackList(record.track_uris, None, "pds_other_cid")

    async def _recommend(self, playlist: PlaylistRow, tracks: _TrackList) -> Answer:
        """the answer through the one path every writer takes (`Recommender.ensure`
        under the playlist's lock); computed without the cache when Redis is down, the
        version is not the database's, or another run holds the lock (it writes it)."""
        playlist_id = playlist.playlist_id
        if tracks.token is not None and self._cache_up():
            version = PlaylistVersion(
                playlist_id,
                tracks.token,
                rev_at(playlist.updated_at),  # the version plyr.fm's database names
                playlist.owner_did,
                tuple(tracks.track_uris),
            )
            try:
                async with playlist_lock(
                    self.cache.redis, playlist_id, lease_seconds=self.limits.miss_lease_seconds
                ) as lease:
                    ensured = await self.recommender.ensure(version, lease=lease)
            except (PlaylistBusy, LeaseLost):
                self.metrics.answers.labels("lock_busy").inc()
            except CACHE_FAULTS as error:
                self._cache_failed(error)
            else:
                return Answer(ensured.value, ensured.outcome.value)
        track_ids = await self.recommender.track_ids(tracks.track_uris)
        value, _ = await self.recommender.compute(track_ids)
        return Answer(value, "computed_uncached")

    async def _recent_unversioned(
        self, key: tuple[str, str], playlist: PlaylistRow
    ) -> Answer | None:
        """a recent answer from a PDS naming another version, screened again as it is
        served (a takedown since), and dropped if its record was deleted since."""
        recent = self._unversioned.get(key)
        if recent is None:
            return None
        answer, until = recent
        if time.monotonic() >= until or answer.value is None:
            self._unversioned.pop(key, None)
            return None
        if playlist.record_uri is not None and self._cache_up():
            try:
                deleted = await self._bounded(self.cache.deleted_rev(playlist.record_uri))
            except CACHE_FAULTS as error:
                self._cache_failed(error)
            else:
                if deleted is not None:
                    self._unversioned.pop(key, None)
                    return None
        value = answer.value
        if self.withdrawn is not None:
            # checked with plyr.fm's database, not only by the copy: an answer cached
            # under no key is in no withdrawal round's index of live answers
            value = await self.withdrawn.checked(value, self.recommender.catalog)
        return Answer(value, "pds_other_cid_recent")

    def _remember_unversioned(self, key: tuple[str, str], answer: Answer) -> None:
        self._unversioned.pop(key, None)
        self._unversioned[key] = (answer, time.monotonic() + self.limits.unversioned_answer_seconds)
        while len(self._unversioned) > self.limits.max_unversioned_answers:
            self._unversioned.pop(next(iter(self._unversioned)))

    # --- the cache's health -------------------------------------------------------------

    def _cache_up(self) -> bool:
        return self.breaker.closed

    def _cache_failed(self, error: BaseException) -> None:
        if self.breaker.failed():
            logger.warning(
                "Redis unavailable (%s, %d faults in a row); computing without the cache for %.1fs",
                type(error).__name__,
                self.limits.cache_failures_to_open,
                self.limits.cache_retry_seconds,
            )
        self.metrics.redis_faults.inc()
        if self.withdrawn is not None:
            self.withdrawn.cache_lost()

    async def _bounded(self, call: Awaitable[_T]) -> _T:
        async with asyncio.timeout(self.limits.cache_timeout_seconds):
            return await call
