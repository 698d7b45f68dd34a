"""reading many playlists' list records from their owners' PDSes, for one reconcile pass.

a public playlist's tracks live only in its list record. a pass that finds a page
of playlists not cached reads their records here: `getRecord` each, or, when
several of one owner's playlists are due, that owner's `listRecords` (one request
per 100 records instead of one per playlist). the requests go through
`PdsRecords` (same bounds on time and size, same validation as a firehose record).

politeness and failure, per pass:
- at most `per_host` requests in flight to one PDS host, `total` to all of them;
- a host that fails (unreachable, slow, an error status, junk) is not asked again
  in this pass: its other playlists are reported failed at once. the client
  remembers it beyond the pass (`worker.identity.pds_failures`, with backoff), as it
  remembers a record refused as too large or invalid: a later pass asks only once
  the backoff has passed (never a tight loop against a PDS that is down or hostile);
- a host gets `host_seconds` of each page's reads (issue 23, finding 9): past
  that, its requests not yet made are `host_failing` and it is remembered as
  slow, so a PDS dripping pages with an endless cursor cannot hold the page its
  playlists are on (per page, not per pass: a big honest host serves playlists
  on every page of a long pass);
- a record the PDS says it does not have (`RecordNotFound`), or that a complete
  `listRecords` does not contain, is `DELETED`: the playlist is gone from its
  owner's repo, whatever plyr.fm's database still says.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from worker.identity.pds import (
    HOST_FAILING,
    RECORD_FAILING,
    ListRecord,
    PdsRecords,
    RecordRejected,
    RecordUnavailable,
    pds_host,
)
from worker.identity.pds_backoff import Scope, scope_of

logger = logging.getLogger(__name__)

__all__ = ["DELETED", "HOST_FAILING", "RECORD_FAILING", "PassRecords", "RecordMissing"]

DELETED: Final = "deleted"
LIST_THRESHOLD: Final = 3  # due playlists of one owner from which listRecords is used
MAX_LIST_PAGES: Final = 10  # listRecords pages read per owner (1,000 records) before getRecord
# one host's time in one page's reads: 4 full timeouts (5 s each by default), far past
# an honest PDS's few requests for a page (a pass reads 100 playlists a page)
HOST_SECONDS: Final = 20.0


@dataclass(frozen=True, slots=True)
class WantedRecord:
    record_uri: str
    pds_url: str
    owner_did: str


@dataclass(frozen=True, slots=True)
class RecordMissing:
    """why no record came back: `DELETED`, or a fault word (a later pass retries)."""

    reason: str


RecordResult = ListRecord | RecordMissing


class PassRecords:
    """the record reads of one pass (its memory of failing hosts lasts the pass)."""

    def __init__(
        self,
        pds: PdsRecords,
        *,
        per_host: int,
        total: int,
        list_threshold: int = LIST_THRESHOLD,
        host_seconds: float = HOST_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_host < 1 or total < 1 or host_seconds <= 0:
            raise ValueError("in-flight and time bounds must be positive")
        self.pds = pds
        self.per_host = per_host
        self.list_threshold = list_threshold
        self.host_seconds = host_seconds
        self._clock = clock
        self._total = asyncio.Semaphore(total)
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._failing: dict[str, str] = {}  # host -> the fault it answered
        self._first_request: dict[str, float] = {}  # host -> when this page first asked it
        self.requests = 0  # getRecord and listRecords calls made

    async def read(self, wanted: Sequence[WantedRecord]) -> dict[str, RecordResult]:
        """each wanted record by URI: its `ListRecord` or why it is missing."""
        self._first_request.clear()  # each page gives each host its time anew
        groups: dict[tuple[str, str], list[WantedRecord]] = defaultdict(list)
        for item in wanted:
            groups[(item.pds_url, item.owner_did)].append(item)
        results: dict[str, RecordResult] = {}
        for item in wanted:
            # refused lately as too large or invalid: not read again until its backoff passes
            if self.pds.failures.failing(item.record_uri) is not None:
                results[item.record_uri] = RecordMissing(RECORD_FAILING)
                groups[(item.pds_url, item.owner_did)].remove(item)
        jobs = []
        for (pds_url, owner_did), items in groups.items():
            if len(items) >= self.list_threshold:
                jobs.append(self._by_listing(pds_url, owner_did, items, results))
            else:
                jobs.extend(self._one(item, results) for item in items)
        await asyncio.gather(*jobs)
        return results

    async def _one(self, item: WantedRecord, results: dict[str, RecordResult]) -> None:
        host = pds_host(item.pds_url)
        async with self._slot(host):
            if not self._may_ask(host, item.pds_url):
                results[item.record_uri] = RecordMissing(HOST_FAILING)
                return
            self.requests += 1
            try:
                results[item.record_uri] = await self.pds.fetch(item.pds_url, item.record_uri)
            except RecordUnavailable as missing:
                results[item.record_uri] = self._missing(host, missing)

    async def _by_listing(
        self,
        pds_url: str,
        owner_did: str,
        items: list[WantedRecord],
        results: dict[str, RecordResult],
    ) -> None:
        host = pds_host(pds_url)
        wanted = {item.record_uri for item in items}
        found: dict[str, ListRecord | RecordRejected] = {}
        cursor: str | None = None
        complete = False
        for _ in range(MAX_LIST_PAGES):
            async with self._slot(host):
                if not self._may_ask(host, pds_url):
                    break
                self.requests += 1
                try:
                    page, cursor = await self.pds.list_page(pds_url, owner_did, cursor=cursor)
                except RecordUnavailable as missing:
                    if missing.reason == "not_found":  # the repo itself is gone
                        complete = True
                    else:
                        self._missing(host, missing)
                    break
            found.update((uri, value) for uri, value in page.items() if uri in wanted)
            if cursor is None:
                complete = True
                break
            if wanted <= found.keys():
                break
        unresolved = []
        for item in items:
            value = found.get(item.record_uri)
            if isinstance(value, RecordRejected):
                if scope_of(value.reason) is Scope.RECORD:
                    # as `fetch` remembers it: the next pass does not list it again
                    self.pds.failures.failed(item.record_uri, value.reason, Scope.RECORD)
                results[item.record_uri] = RecordMissing(value.reason)
            elif value is not None:
                results[item.record_uri] = value
            elif complete:
                results[item.record_uri] = RecordMissing(DELETED)
            else:
                unresolved.append(item)
        # a listing cut short (too long, or a page that failed): ask for the rest one by one
        await asyncio.gather(*(self._one(item, results) for item in unresolved))

    def _may_ask(self, host: str, pds_url: str) -> bool:
        """False once the host failed in this pass, is remembered failing by the
        client, or has had its `host_seconds` of this page."""
        if host in self._failing or self.pds.failing(pds_url) is not None:
            return False
        now = self._clock()
        first = self._first_request.setdefault(host, now)
        if now - first > self.host_seconds:
            self._failing[host] = "slow"
            seconds = self.pds.failures.failed(host, "slow")
            logger.warning(
                "PDS %s took its %.0f s of a page: refused for %.0f s",
                host,
                self.host_seconds,
                seconds,
            )
            return False
        return True

    def _missing(self, host: str, missing: RecordUnavailable) -> RecordMissing:
        if missing.reason == "not_found" and not isinstance(missing, RecordRejected):
            return RecordMissing(DELETED)
        if scope_of(missing.reason) is Scope.HOST and host not in self._failing:
            self._failing[host] = missing.reason
            logger.info("PDS %s failed (%s): skipped for the rest of this pass", host, missing)
        return RecordMissing(missing.reason)

    def _slot(self, host: str) -> _Slot:
        semaphore = self._hosts.get(host)
        if semaphore is None:
            semaphore = self._hosts[host] = asyncio.Semaphore(self.per_host)
        return _Slot(semaphore, self._total)


class _Slot:
    """one request's place: its host's bound first, then the pass's."""

    def __init__(self, host: asyncio.Semaphore, total: asyncio.Semaphore) -> None:
        self._host = host
        self._total = total

    async def __aenter__(self) -> None:
        await self._host.acquire()
        try:
            await self._total.acquire()
        except BaseException:
            self._host.release()
            raise

    async def __aexit__(self, *_: object) -> None:
        self._total.release()
        self._host.release()
