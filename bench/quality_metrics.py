"""the quality benchmark's measures of one answer, as pure functions.

an answer is judged by the sound regions of its tracks against the playlist's
own (its designed regions, strays left out) and their mix:

- precision: the share of the answer's tracks in one of the playlist's regions;
- coverage: the share of the playlist's regions at least one answer track is in;
- mixture fidelity: 1 - the total variation distance between the answer's region
  mix and the playlist's. the answer's mix is over the playlist's regions plus one
  "elsewhere" bin (which the playlist's mix gives 0), so
  fidelity = 1 - 1/2 * sum_r |answer_share(r) - playlist_share(r)| - 1/2 * elsewhere;
  1 is a perfect mix, 0 an answer entirely elsewhere. at top n an integer answer
  cannot always match the mix (2 regions 50/50 at top 3: at best 2/1, 0.833);
  `fidelity_ceiling` is the best an answer of n tracks can reach;
- leave-one-out hit: whether a hidden playlist track comes back in the answer;
- artists: distinct artists in the answer;
- novelty: the share of an answer's tracks recommended to no other playlist of
  the same group (playlists sharing their main region), so an engine that sends
  every similar playlist the same few hub tracks scores low.

an empty answer has no precision (None, left out of means) and 0 coverage and
fidelity.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping, Sequence

from engine.fusion import largest_remainder


def precision(answer_regions: Sequence[int], playlist_regions: Sequence[int]) -> float | None:
    if not answer_regions:
        return None
    wanted = set(playlist_regions)
    return sum(region in wanted for region in answer_regions) / len(answer_regions)


def coverage(answer_regions: Sequence[int], playlist_regions: Sequence[int]) -> float:
    wanted = set(playlist_regions)
    if not wanted:
        raise ValueError("a playlist has at least one region")
    return len(wanted & set(answer_regions)) / len(wanted)


def fidelity(answer_regions: Sequence[int], playlist_mix: Mapping[int, float]) -> float:
    """1 - total variation distance between the answer's region mix (with an
    'elsewhere' bin) and `playlist_mix` (region -> share, summing to 1)."""
    if not answer_regions:
        return 0.0
    counts = Counter(answer_regions)
    n = len(answer_regions)
    inside = sum(abs(counts.get(region, 0) / n - share) for region, share in playlist_mix.items())
    elsewhere = sum(c for region, c in counts.items() if region not in playlist_mix) / n
    return 1.0 - 0.5 * (inside + elsewhere)


def fidelity_ceiling(playlist_mix: Mapping[int, float], n: int) -> float:
    """the fidelity of the best answer of `n` tracks: the mix apportioned by largest
    remainder (which minimises the L1 distance to the quotas among integer splits)."""
    if n < 1:
        raise ValueError("an answer has at least one track")
    regions = list(playlist_mix)
    weights = [round(playlist_mix[r] * 1_000_000) for r in regions]
    counts = largest_remainder(weights, n)
    best = [r for r, c in zip(regions, counts, strict=True) for _ in range(c)]
    return fidelity(best, playlist_mix)


def hit(answer_ids: Sequence[int], held_out: int) -> bool:
    return held_out in answer_ids


def distinct_artists(answer_artists: Sequence[Hashable]) -> int:
    return len(set(answer_artists))


def novelty(answers: Sequence[Sequence[int]], groups: Sequence[Hashable]) -> list[float | None]:
    """per answer: the share of its tracks in no other answer of its group (None for
    an empty answer, or one alone in its group: nothing to compare with)."""
    if len(answers) != len(groups):
        raise ValueError("one group per answer")
    members: dict[Hashable, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    # how many answers of the group hold each track (a track counted once per answer)
    held: dict[Hashable, Counter[int]] = {
        group: Counter(t for i in indices for t in set(answers[i]))
        for group, indices in members.items()
    }
    result: list[float | None] = []
    for answer, group in zip(answers, groups, strict=True):
        if not answer or len(members[group]) < 2:
            result.append(None)
            continue
        counts = held[group]
        distinct = set(answer)
        result.append(sum(counts[t] == 1 for t in distinct) / len(distinct))
    return result
