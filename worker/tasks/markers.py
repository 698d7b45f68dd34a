"""what the consumer's markers become in the worker: a track deleted by its owner is
withdrawn (`withdraw_track`), a repo resync is counted (the reconcile loop verifies
that repo's lists on its next pass).

the consumer hands each batch's markers over before its cursor moves past them, and
replays the batch if this raises, so everything here is idempotent: a delete is one
docket task keyed by the track's URI.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from jetstream.events import RepoResync, TrackDelete
from worker.tasks.withdrawals import TrackDeleteHandler


class WorkerMarkers:
    """the `jetstream.batch.MarkerSink` of `plyr-recs jetstream` and `plyr-recs run`."""

    def __init__(self, on_track_delete: TrackDeleteHandler) -> None:
        self._on_track_delete = on_track_delete
        self.counts: Counter[str] = Counter()

    async def track_deleted(self, deletes: Sequence[TrackDelete]) -> None:
        for delete in deletes:
            # the task checks the URI names a record of the repo that deleted it
            await self._on_track_delete(delete.track_uri, delete.did)
            self.counts["track_deletes"] += 1

    async def repo_resynced(self, resyncs: Sequence[RepoResync]) -> None:
        self.counts["resyncs"] += len(resyncs)
