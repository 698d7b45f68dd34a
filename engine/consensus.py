"""fusing the per-track lists of a playlist of 2 to 5 tracks: slots per mood,
the playlist's consensus first within each.

below 6 tracks every track is a query (engine.strategy). interleaving their
lists one pick each (proportional fusion, all weights 1) opened the answer with
each track's own nearest neighbour: a track at the edge of its sound has
neighbours across the border. on the CLAP-like world (`python -m bench quality
--clap`) 2-5-track playlists got 3 % of their top 3 from no sound of theirs,
where plyr.fm's original (RRF over the same lists, which puts first what several
tracks agree on) got none; most of those picks were nearest a track that had
another track of its sound in the playlist. RRF alone gives up the other half:
a lone track's sound comes after everything the majority agrees on (coverage
at top 3 0.77 against 0.93). so, pure functions over the lists the store returned:

- slots: per mood, in proportion to its tracks, its best pick first
  (engine.fusion.proportional_fuse, as for the clusters of 6+ tracks). a mood
  is usually one track; two tracks are one mood when their lists share at least
  `SHARED_NEIGHBOURS` of their first `SHARED_DEPTH` candidates (joined through a
  track of both): a relative measure, which the common direction of CLAP
  embeddings (every cosine in a narrow band) does not move. in the benchmark's
  full worlds about 1 in 10 pairs of tracks of one sound reach 3 of 20, pairs of
  sibling sounds never. comparing deeper (5 of the first 100) joined half the
  pairs of one sound and closed the precision gap on the full worlds, but
  on a catalogue whose sounds hold ~125 tracks (`--quick`) it joined siblings
  and lost 5 points of coverage at top 10: how deep "near" reaches depends on
  how many tracks a sound has, so the rule stays shallow;
- which mood a candidate serves: the one whose track ranks it best (lowest
  rank, then the closer, then the earlier list);
- within a mood its candidates go by their RRF score over all the lists
  (plyr.fm's own rule), so what several tracks agree on comes before one
  track's nearest neighbour: each track keeps its share of the answer, and
  fills it with what the rest of the playlist also points at.

off by default (engine.recommend.DEFAULT_CONSENSUS): it is a trade, not better
everywhere (README, "Quality").
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from engine.fusion import RRF_K, proportional_fuse
from engine.types import Candidate

# chosen with `python -m bench quality` on the plain and CLAP-like worlds (README, "Quality")
SHARED_DEPTH = 20  # the first candidates of each list compared
SHARED_NEIGHBOURS = 0.15  # share of the shorter of the two prefixes: 3 of 20


def track_moods(
    ranked_lists: Sequence[Sequence[Candidate]],
    *,
    depth: int = SHARED_DEPTH,
    threshold: float = SHARED_NEIGHBOURS,
) -> list[list[int]]:
    """the lists' indices grouped into moods (see the module docstring): each mood's
    indices ascending, moods in the order of their first index."""
    prefixes = [{c.track_id for c in candidates[:depth]} for candidates in ranked_lists]
    return _moods(prefixes, threshold)


def _moods(prefixes: list[set[int]], threshold: float) -> list[list[int]]:
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
    the list that ranks it best.

    every candidate is scored (RRF needs them all, where the interleave looked at
    no more than it placed): one pass over each list's ids and one sort of plain
    tuples, ~10x the interleave's CPU on 5 x 115 candidates (`python -m bench engine`,
    N = 5), still a fraction of a millisecond."""
    kept = [_ranked(candidates, exclude) for candidates in ranked_lists]
    id_lists = [[c.track_id for c in candidates] for candidates in kept]
    moods = _moods([set(ids[:SHARED_DEPTH]) for ids in id_lists], SHARED_NEIGHBOURS)
    mood_of_list = [0] * len(kept)
    for mood, members in enumerate(moods):
        for index in members:
            mood_of_list[index] = mood
    longest = max(map(len, id_lists), default=0)
    weight = _RRF_WEIGHTS if longest <= len(_RRF_WEIGHTS) else _rrf_weights(longest)
    scores: dict[int, float] = {}
    owner: dict[int, tuple[int, int]] = {}  # track -> (rank, list) of the list ranking it best
    for index, ids in enumerate(id_lists):
        for rank, track_id in enumerate(ids):
            score = scores.get(track_id)
            if score is None:
                scores[track_id] = weight[rank]
                owner[track_id] = (rank, index)
                continue
            scores[track_id] = score + weight[rank]
            best_rank, best_list = owner[track_id]
            if rank < best_rank or (
                rank == best_rank and kept[index][rank].distance < kept[best_list][rank].distance
            ):
                owner[track_id] = (rank, index)
    entries = [
        (-scores[track_id], kept[index][rank].distance, track_id, index, rank)
        for track_id, (rank, index) in owner.items()
    ]
    entries.sort()  # best score, then the closer, then the smaller id (ids are unique)
    queues: list[list[Candidate]] = [[] for _ in moods]
    for _, _, _, index, rank in entries:
        queues[mood_of_list[index]].append(kept[index][rank])
    sizes = [len(members) for members in moods]
    return proportional_fuse(queues, sizes, slots=slots, accept=accept)


def _rrf_weights(count: int) -> list[float]:
    """1 / (60 + rank) for ranks 1..count."""
    return [1.0 / (RRF_K + rank) for rank in range(1, count + 1)]


_RRF_WEIGHTS = _rrf_weights(1000)  # engine.recommend asks at most MAX_TOP_K per query


def _ranked(candidates: Sequence[Candidate], exclude: Collection[int]) -> Sequence[Candidate]:
    """the candidates less the excluded ones and repeats (the store gives neither, so
    the list comes back as it is, after one pass)."""
    ids = [c.track_id for c in candidates]
    unique = set(ids)
    if len(unique) == len(ids) and unique.isdisjoint(exclude):
        return candidates
    seen: set[int] = set()
    kept = []
    for candidate in candidates:
        if candidate.track_id not in exclude and candidate.track_id not in seen:
            seen.add(candidate.track_id)
            kept.append(candidate)
    return kept
