"""what the consumer's markers become in the worker: a track deleted by its owner is
withdrawn (`withdraw_track`, at the time the consumer's flood control gave it; a
batch's deletes in one pipeline), a repo resync is only counted (nothing re-reads that
repo's lists: a change the firehose never showed is caught like any missed edit, by the
reconcile loop's regular pass once plyr.fm's database names an uncached version).

the consumer hands each batch's markers over before its cursor moves past them, and
replays the batch if this raises, so everything here is idempotent: a delete is one
docket task keyed by the track's URI.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from jetstream.batch import DueDelete
from jetstream.events import RepoResync
from worker.tasks.withdrawals import TrackDeleteHandler


class WorkerMarkers:
    """the `jetstream.batch.MarkerSink` of `plyr-recs jetstream` and `plyr-recs run`."""

    def __init__(self, on_track_delete: TrackDeleteHandler) -> None:
        self._on_track_delete = on_track_delete
        self.counts: Counter[str] = Counter()

    async def track_deleted(self, deletes: Sequence[DueDelete]) -> None:
        # the task checks the URI names a record of the repo that deleted it
        await self._on_track_delete(
            [(due.delete.track_uri, due.delete.did, due.when) for due in deletes]
        )
        self.counts["track_deletes"] += len(deletes)

    async def repo_resynced(self, resyncs: Sequence[RepoResync]) -> None:
        self.counts["resyncs"] += len(resyncs)
