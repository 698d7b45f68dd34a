"""the frames around the playlists: what a real firehose also carries.

an album and a liked list (list records that must not get recommendations),
records of other collections, identity and account events, a duplicate and a
stale redelivery of a playlist commit, and malformed frames. none of them may
change what a playlist ends up with; the tests hold the consumer to that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import numpy as np

from jetstream.syntax import tid
from worker.demo import wire
from worker.demo.steps import StepKind

if TYPE_CHECKING:
    from worker.demo.story import Story

OTHER_RECORDS: Final = ("fm.plyr.track", "fm.plyr.like", "app.bsky.feed.post")
ALBUM_TRACKS: Final = 8
LIKED_TRACKS: Final = 6
# the playlist the replays are of: the first template is never deleted and commits
# five times, so a duplicate of its latest and a stale copy of its first both exist
REPLAYED: Final = 0
SEQ_START: Final = 9_000_000_000  # identity/account events' `seq` values start here


def render_extra(story: Story, extra: str, variant: int) -> None:
    """append the extra frame named `extra` (variant `variant`) at the story's current moment."""
    if extra in ("album", "liked"):
        _ignored_list(story, album=extra == "album")
    elif extra == "other":
        _other_record(story, OTHER_RECORDS[variant % len(OTHER_RECORDS)])
    elif extra == "identity":
        _identity(story, variant)
    elif extra == "account":
        _account(story, variant)
    elif extra == "malformed":
        _malformed(story, variant)
    elif extra in ("duplicate", "stale"):
        _replay(story, stale=extra == "stale")
    else:
        raise ValueError(f"no extra frame called {extra!r}")


def _album_artist(story: Story) -> int:
    """the most prolific active artist who owns no playlist in the session."""
    catalogue = story.catalogue
    counts = np.bincount(catalogue.track_artists, minlength=len(catalogue.artists))
    counts[story.listeners] = -1
    counts[story.deactivated_artists] = -1
    return int(np.argmax(counts))


def _ignored_list(story: Story, *, album: bool) -> None:
    catalogue = story.catalogue
    if album:
        owner = _album_artist(story)
        tracks = np.flatnonzero(catalogue.track_artists == owner)[:ALBUM_TRACKS].tolist()
        name = f"{catalogue.tracks[tracks[0]].title} (album)"
    else:
        owner = story.listeners[0]
        tracks = story.rng.choice(len(catalogue.tracks), LIKED_TRACKS, replace=False).tolist()
        name = "liked"
    did = catalogue.artists[owner].did
    rkey = tid(story.now_us - 1_000, story.key_clock)
    record = wire.list_record(
        name=name,
        list_type="album" if album else "liked",
        items=[(catalogue.track_uris[t], catalogue.track_cids[t]) for t in tracks],
        created_at=wire.iso_time(story.now_us),
    )
    frame, _ = wire.commit_frame(
        did=did,
        time_us=story.now_us,
        rev=tid(story.now_us, story.clock),
        operation="create",
        collection=wire.LIST_COLLECTION,
        rkey=rkey,
        record=record,
    )
    uri = f"at://{did}/{wire.LIST_COLLECTION}/{rkey}"
    story.ignored.append(uri)
    what = "an album" if album else "a liked list"
    story.step(frame, StepKind.IGNORED_LIST, f'{what}, "{name}" ({len(tracks)}): never recommended')


def _other_record(story: Story, collection: str) -> None:
    catalogue = story.catalogue
    artist = catalogue.artists[_album_artist(story)]
    track = int(story.rng.integers(len(catalogue.tracks)))
    created_at = wire.iso_time(story.now_us)
    record: dict[str, object] = {"$type": collection, "createdAt": created_at}
    if collection == "fm.plyr.track":
        record["title"] = f"{catalogue.tracks[track].title} (new)"
    elif collection == "fm.plyr.like":
        uri, cid = catalogue.track_uris[track], catalogue.track_cids[track]
        record["subject"] = {"uri": uri, "cid": cid}
    else:
        record["text"] = "new music on plyr.fm this week"
    frame, _ = wire.commit_frame(
        did=artist.did,
        time_us=story.now_us,
        rev=tid(story.now_us, story.clock),
        operation="create",
        collection=collection,
        rkey=tid(story.now_us - 1_000, story.key_clock),
        record=record,
    )
    story.step(frame, StepKind.OTHER_COLLECTION, f"a {collection} record: not a list")


def _identity(story: Story, variant: int) -> None:
    artist = story.catalogue.artists[story.listeners[variant % len(story.listeners)]]
    seq = SEQ_START + len(story.steps)
    frame = wire.identity_frame(did=artist.did, handle=artist.handle, time_us=story.now_us, seq=seq)
    story.step(frame, StepKind.IDENTITY, f"identity event for @{artist.handle}")


def _account(story: Story, variant: int) -> None:
    """an active listener, then the deactivated artist going inactive (their tracks
    are already hidden from recommendations by the catalogue)."""
    deactivating = variant % 2 == 1 and len(story.deactivated_artists) > 0
    if deactivating:
        artist = story.catalogue.artists[int(story.deactivated_artists[0])]
    else:
        artist = story.catalogue.artists[story.listeners[0]]
    seq = SEQ_START + len(story.steps)
    frame = wire.account_frame(
        did=artist.did, active=not deactivating, time_us=story.now_us, seq=seq
    )
    state = "deactivated" if deactivating else "active"
    story.step(frame, StepKind.ACCOUNT, f"account event: @{artist.handle} is {state}")


def _malformed(story: Story, variant: int) -> None:
    catalogue = story.catalogue
    did = catalogue.artists[story.listeners[-1]].did
    frames = wire.malformed_frames(
        did=did,
        time_us=story.now_us,
        rev=tid(story.now_us, story.clock),
        rkey=tid(story.now_us - 1_000, story.key_clock),
        track=(catalogue.track_uris[0], catalogue.track_cids[0]),
    )
    problem, frame = frames[variant % len(frames)]
    story.step(frame, StepKind.MALFORMED, f"malformed frame: {problem}")


def _replay(story: Story, *, stale: bool) -> None:
    """a commit of the replayed playlist delivered again: its latest (a duplicate:
    same rev, same CID) or its first (stale: an older rev than it has now)."""
    playlist = story.playlists[REPLAYED]
    original = playlist.commits[0] if stale else playlist.commits[-1]
    frame = wire.with_time(original, story.now_us)
    what = "a stale copy of its first commit" if stale else "a duplicate of its latest commit"
    note = f'replay of "{playlist.name}": {what}'
    story.step(frame, StepKind.REPLAY, note, playlist.uri)
