"""the version rule, written once: which version of a playlist an answer is for, and
which of two versions is the newer.

a version is keyed in the cache by its token: the list record's CID, or for a
private playlist (no record) and a record plyr.fm has not ingested a CID for,
its `updated_at` in ISO form (`engine.cache.private_token`), as plyr.fm does.

versions are ordered by a rev, a TID (sortable base32 of unix microseconds, so
string order is time order):

- a change the Jetstream consumer accepted carries its commit's rev: exact, since
  a repo's revs only grow;
- a version read from plyr.fm's database (the reconcile loop, a private playlist,
  the API's miss, a refill) carries the rev the consumer accepted for that very
  CID when it did, else one minted from the row's `updated_at`. plyr.fm sets
  `updated_at` when it ingests a change, after its commit, so a version the
  database names after an edit was committed sorts after that edit's rev.

no version is without a rev: an empty one used to sort before everything and
after nothing, which let a reconcile pass roll a playlist's state back and kept a
re-created playlist from healing for a day.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from engine.cache import MAX_TOKEN_LENGTH, PlaylistState, fingerprint, private_token
from engine.types import PlaylistRow
from jetstream.syntax import tid


def version_token(playlist: PlaylistRow) -> str | None:
    """the cache token of the playlist's current version, None if it cannot be one."""
    if not playlist.is_private and playlist.record_cid:
        token = playlist.record_cid
    else:
        # private (no record), or a record plyr.fm has not ingested a CID for yet
        token = private_token(playlist.updated_at)
    return token if len(token) <= MAX_TOKEN_LENGTH else None


def rev_at(moment: datetime) -> str:
    """the TID of a moment (clock id 0): the rev of a version known by its time."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return tid(max(0, int(moment.timestamp() * 1_000_000)))


def database_rev(playlist: PlaylistRow, accepted: tuple[str, str | None] | None) -> str:
    """the rev of the version plyr.fm's database names for `playlist`: the consumer's
    accepted `(rev, cid)` when it is this very version, else minted from `updated_at`."""
    if accepted is not None and accepted[1] and accepted[1] == playlist.record_cid:
        return accepted[0]
    return rev_at(playlist.updated_at)


def is_newer(rev: str, than: str) -> bool:
    """whether `rev` is a later version than `than` (TIDs: string order is time order)."""
    return rev > than


@dataclass(frozen=True, slots=True)
class PlaylistVersion:
    """one version of one playlist: what an answer is computed for and cached under."""

    playlist_id: str
    token: str  # the cache key's version part
    rev: str  # its place among the playlist's versions (never empty)
    owner_did: str
    track_uris: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.rev:
            raise ValueError("a version needs a rev (see worker.recs.version)")

    def state(self, track_ids: Sequence[int]) -> PlaylistState:
        """the playlist's state once this version is cached, its tracks resolved to ids."""
        return PlaylistState(
            self.token,
            fingerprint(track_ids),
            list(track_ids),
            list(self.track_uris),
            self.rev,
            self.owner_did,
        )
