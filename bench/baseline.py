"""plyr.fm's original algorithm in pure Python, written from DESIGN.md's description.

the benchmark's baseline: plain lists, Euclidean k-means from random initial
centroids (random.sample of the points), Lloyd's iterations until the
assignment stops changing, and RRF over dicts. it is what the engine
replaced, kept only to measure against in the same run.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

RRF_K = 60
MAX_ITERATIONS = 50


def normalise(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm else list(vector)


def kmeans(points: list[list[float]], k: int, rng: random.Random) -> list[list[float]]:
    centroids = [list(p) for p in rng.sample(points, k)]
    assignment: list[int] = []
    for _ in range(MAX_ITERATIONS):
        new_assignment = []
        for point in points:
            best, best_distance = 0, math.inf
            for j, centroid in enumerate(centroids):
                distance = sum((a - b) ** 2 for a, b in zip(point, centroid, strict=True))
                if distance < best_distance:
                    best, best_distance = j, distance
            new_assignment.append(best)
        if new_assignment == assignment:
            break
        assignment = new_assignment
        for j in range(k):
            members = [p for p, label in zip(points, assignment, strict=True) if label == j]
            if members:
                centroids[j] = [sum(column) / len(members) for column in zip(*members, strict=True)]
    return centroids


def query_vectors(vectors: list[list[float]], rng: random.Random) -> list[list[float]]:
    """the adaptive strategy: 1 -> itself, 2..5 -> each, 6+ -> min(3, N//2) centroids."""
    n = len(vectors)
    if n <= 5:
        return [normalise(v) for v in vectors]
    return [normalise(c) for c in kmeans([normalise(v) for v in vectors], min(3, n // 2), rng)]


def rrf(ranked_lists: list[list[tuple[int, float]]], exclude: set[int]) -> list[tuple[int, float]]:
    scores: dict[int, float] = {}
    best: dict[int, float] = {}
    for ranked in ranked_lists:
        rank = 0
        for track_id, distance in ranked:
            if track_id in exclude:
                continue
            rank += 1
            scores[track_id] = scores.get(track_id, 0.0) + 1.0 / (RRF_K + rank)
            best[track_id] = min(distance, best.get(track_id, math.inf))
    order = sorted(scores, key=lambda t: (-scores[t], best[t], t))
    return [(t, best[t]) for t in order]
