"""the docket tasks: what the Jetstream consumer enqueues and `plyr-recs worker` runs.

the consumer enqueues these by function, so their signatures are the contract
between the two processes:

- `recompute_playlist(playlist_uri, cid, rev, track_uris)` under the docket key
  `recompute_key(playlist_uri)`, replaced on every accepted edit so rapid edits
  collapse into one run of the newest state;
- `forget_playlist(playlist_uri)` on a delete.
"""

from __future__ import annotations


def recompute_key(playlist_uri: str) -> str:
    """the docket key of a playlist's pending recompute (one per playlist)."""
    return f"recompute:{playlist_uri}"


def forget_key(playlist_uri: str) -> str:
    """the docket key of a playlist's pending forget."""
    return f"forget:{playlist_uri}"


async def recompute_playlist(playlist_uri: str, cid: str, rev: str, track_uris: list[str]) -> None:
    """recompute a playlist's recommendations for the record `cid` (issue 4 fills this in)."""
    raise NotImplementedError("the recompute task lands with the worker (issue 4)")


async def forget_playlist(playlist_uri: str) -> None:
    """drop a deleted playlist's cached recommendations and state (issue 4 fills this in)."""
    raise NotImplementedError("the forget task lands with the worker (issue 4)")


# every task `plyr-recs worker` registers; a test pins that the consumer
# enqueues nothing outside this list.
TASKS = [recompute_playlist, forget_playlist]
