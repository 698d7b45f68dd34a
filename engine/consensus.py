"""fusing the per-track lists of a playlist of 2 to 5 tracks: slots per mood,
the playlist's consensus first within each.

below 6 tracks every track is a query (engine.strategy). interleaving their
lists one pick each (proportional fusion, all weights 1) opened the answer with
each track's own nearest neighbour: a track at the edge of its sound has
neighbours across the border, and on the CLAP-like world
(`python -m bench quality --clap`) 2-5-track playlists got 3 % of their top 3
from no sound of theirs, where plyr.fm's original (RRF over the same lists,
which puts first what several tracks agree on) got none; most of those picks
were nearest a track that had another track of its sound in the playlist,
whose agreement RRF had used. RRF alone gives up the other half: a lone
track's sound comes after everything the majority agrees on (coverage at top 3
0.78 against 0.93). so, pure functions over the lists the store returned:

- moods: two tracks are one mood when their lists share at least
  `SHARED_NEIGHBOURS` of their first `SHARED_DEPTH` candidates (and moods are
  joined through a track of both). neighbours shared is a relative measure:
  the common direction of CLAP embeddings, which squeezes every cosine into a
  narrow band, does not move it. in the benchmark's worlds tracks of one sound
  share a median 24-28 % of their first 100 neighbours, tracks of sibling
  sounds almost never more than 3 %, of unrelated sounds none;
- slots: a mood's share of the answer is its share of the tracks, its best pick
  first (engine.fusion.proportional_fuse, as for the clusters of 6+ tracks);
- which mood a candidate serves: the one whose track ranks it best (lowest
  rank, then distance, then the earlier list); within a mood its candidates go
  by their RRF score over all the lists (plyr.fm's own rule), so what several
  tracks agree on comes before one track's nearest neighbour.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from engine.fusion import RRF_K, proportional_fuse
from engine.types import Candidate

# chosen with `python -m bench quality` on the plain and CLAP-like worlds (README, "Quality")
SHARED_DEPTH = 100  # the first candidates of each list compared (top_k is 100 at the default limit)
SHARED_NEIGHBOURS = 0.05  # share of the shorter of the two prefixes


def track_moods(
    ranked_lists: Sequence[Sequence[Candidate]],
    *,
    depth: int = SHARED_DEPTH,
    threshold: float = SHARED_NEIGHBOURS,
) -> list[list[int]]:
    """the lists' indices grouped into moods (see the module docstring): each mood's
    indices ascending, moods in the order of their first index."""
    prefixes = [{c.track_id for c in candidates[:depth]} for candidates in ranked_lists]
    parent = list(range(len(prefixes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a in range(len(prefixes)):
        for b in range(a + 1, len(prefixes)):
            shorter = min(len(prefixes[a]), len(prefixes[b]))
            if shorter and len(prefixes[a] & prefixes[b]) >= threshold * shorter:
                parent[max(root(a), root(b))] = min(root(a), root(b))
    moods: dict[int, list[int]] = {}
    for i in range(len(prefixes)):
        moods.setdefault(root(i), []).append(i)
    return list(moods.values())


def consensus_fuse(
    ranked_lists: Sequence[Sequence[Candidate]],
    *,
    slots: int,
    exclude: Collection[int] = (),
    accept: Callable[[Candidate], bool] | None = None,
) -> list[Candidate]:
    """up to `slots` candidates of the per-track lists: slots per mood, the consensus
    first within each (see the module docstring). `exclude` and `accept` as in
    engine.fusion.proportional_fuse; a candidate keeps its distance to the query of
    the list that ranks it best."""
    moods = track_moods(ranked_lists)
    mood_of = {i: m for m, members in enumerate(moods) for i in members}
    scores: dict[int, float] = {}
    owner: dict[int, tuple[int, float, int, Candidate]] = {}  # rank, distance, list, candidate
    for index, candidates in enumerate(ranked_lists):
        seen_here: set[int] = set()
        rank = 0
        for candidate in candidates:
            track_id = candidate.track_id
            if track_id in exclude or track_id in seen_here:
                continue
            seen_here.add(track_id)
            rank += 1
            scores[track_id] = scores.get(track_id, 0.0) + 1.0 / (RRF_K + rank)
            held = owner.get(track_id)
            if held is None or (rank, candidate.distance) < held[:2]:
                owner[track_id] = (rank, candidate.distance, index, candidate)
    queues: list[list[Candidate]] = [[] for _ in moods]
    for _, _, index, candidate in owner.values():
        queues[mood_of[index]].append(candidate)
    for queue in queues:
        queue.sort(key=lambda c: (-scores[c.track_id], c.distance, c.track_id))
    weights = [len(members) for members in moods]
    return proportional_fuse(queues, weights, slots=slots, accept=accept)
