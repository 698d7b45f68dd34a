"""readable names for the demo: artists, handles, track titles, playlist names.

the live view prints recommendations as "title — artist", so generated rows
should read like a small music site rather than "track 17231". the words are
our own short lists; combinations give enough variety for tens of thousands of
tracks. everything is drawn from a NumPy generator passed in, so it is
deterministic per seed.
"""

from __future__ import annotations

import re
from typing import Final

import numpy as np

ADJECTIVES: Final = (
    "amber", "velvet", "quiet", "electric", "hollow", "golden", "paper", "neon", "distant",
    "slow", "silver", "broken", "warm", "lunar", "salt", "static", "blue", "wild", "soft",
    "faded", "crystal", "restless", "midnight", "rusted", "early", "glass", "honey", "northern",
    "secret", "tender", "burning", "pale", "sunken", "lucid", "copper", "empty", "bright",
    "dusty", "gentle", "heavy",
)  # fmt: skip
NOUNS: Final = (
    "harbor", "lantern", "tide", "signal", "garden", "river", "engine", "orchard", "window",
    "mirror", "forest", "ember", "satellite", "meadow", "highway", "echo", "island", "canyon",
    "pillow", "thunder", "lighthouse", "comet", "ferry", "glacier", "rooftop", "valley",
    "static", "cassette", "paperback", "balcony", "tram", "horizon", "moth", "compass", "kite",
    "reservoir", "avenue", "chapel", "dune", "fountain",
)  # fmt: skip
GERUNDS: Final = (
    "drifting", "falling", "running", "waiting", "dreaming", "burning", "floating", "singing",
    "sleeping", "turning", "leaving", "dancing", "breathing", "holding", "chasing", "wandering",
)  # fmt: skip
FIRST_NAMES: Final = (
    "mira", "juno", "otis", "ada", "felix", "noor", "ines", "rafael", "lena", "theo", "sade",
    "kofi", "yuki", "maren", "elio", "zara", "ivo", "priya", "soren", "lucia", "amara", "ezra",
    "hana", "milo",
)  # fmt: skip
SURNAMES: Final = (
    "sol", "vance", "okafor", "lindqvist", "moreau", "takeda", "reyes", "holm", "adeyemi",
    "castillo", "novak", "brandt", "keller", "marsh", "oyelaran", "silva", "park", "quinn",
)  # fmt: skip
TITLE_SUFFIXES: Final = (
    "",
    "",
    "",
    "",
    "",
    " (demo)",
    " (live)",
    " (interlude)",
    " ii",
    " reprise",
)
PLAYLIST_NAMES: Final = (
    "late night drive", "sunday morning", "focus", "rainy window", "gym rotation",
    "cooking with friends", "long walk home", "deep work", "summer roof", "wind down",
    "road trip", "coffee shop", "first snow", "after the party", "study hall", "slow dance",
    "train window", "morning run", "quiet hours", "heartbreak hotel",
)  # fmt: skip
# handles on the main Bluesky host, with a few on plyr.fm's own domain
HANDLE_DOMAINS: Final = ("bsky.social",) * 6 + ("plyr.fm",)

_NOT_HANDLE = re.compile(r"[^a-z0-9]+")


def _pick(rng: np.random.Generator, words: tuple[str, ...]) -> str:
    return words[int(rng.integers(len(words)))]


def artist_name(rng: np.random.Generator) -> str:
    """one display name, in one of a few shapes real artist names take."""
    shape = int(rng.integers(6))
    if shape == 0:
        return f"{_pick(rng, FIRST_NAMES).title()} {_pick(rng, SURNAMES).title()}"
    if shape == 1:
        return f"the {_pick(rng, ADJECTIVES)} {_pick(rng, NOUNS)}s"
    if shape == 2:
        return f"{_pick(rng, ADJECTIVES).title()} {_pick(rng, NOUNS).title()}"
    if shape == 3:
        return f"{_pick(rng, NOUNS)}{_pick(rng, NOUNS)}"
    if shape == 4:
        return f"DJ {_pick(rng, NOUNS).title()}"
    return f"{_pick(rng, FIRST_NAMES)} & the {_pick(rng, NOUNS)}s"


def artist_names(rng: np.random.Generator, count: int) -> list[str]:
    return [artist_name(rng) for _ in range(count)]


def handles(display_names: list[str], rng: np.random.Generator) -> list[str]:
    """one unique handle per artist, from their display name (`name.bsky.social`)."""
    taken: set[str] = set()
    chosen: list[str] = []
    for display_name in display_names:
        stem = _NOT_HANDLE.sub("", display_name.lower().replace("&", "and"))[:18] or "artist"
        domain = _pick(rng, HANDLE_DOMAINS)
        handle = f"{stem}.{domain}"
        suffix = 2
        while handle in taken:  # two "DJ Comet"s: the second becomes djcomet2
            handle = f"{stem}{suffix}.{domain}"
            suffix += 1
        taken.add(handle)
        chosen.append(handle)
    return chosen


def track_titles(rng: np.random.Generator, count: int) -> list[str]:
    """`count` titles; the word choices are drawn as arrays, only the joins loop."""
    shapes = rng.integers(5, size=count)
    adjectives = rng.integers(len(ADJECTIVES), size=count)
    nouns = rng.integers(len(NOUNS), size=(count, 2))
    gerunds = rng.integers(len(GERUNDS), size=count)
    suffixes = rng.integers(len(TITLE_SUFFIXES), size=count)
    titles: list[str] = []
    for shape, adjective, (noun, other), gerund, suffix in zip(
        shapes.tolist(),
        adjectives.tolist(),
        nouns.tolist(),
        gerunds.tolist(),
        suffixes.tolist(),
        strict=True,
    ):
        if shape == 0:
            title = f"{ADJECTIVES[adjective]} {NOUNS[noun]}"
        elif shape == 1:
            title = f"{NOUNS[noun]} of {NOUNS[other]}s"
        elif shape == 2:
            title = f"{GERUNDS[gerund]} {NOUNS[noun]}"
        elif shape == 3:
            title = f"the {ADJECTIVES[adjective]} {NOUNS[noun]}"
        else:
            title = f"{GERUNDS[gerund]} through the {NOUNS[noun]}"
        titles.append(title + TITLE_SUFFIXES[suffix])
    return titles


def playlist_names(rng: np.random.Generator, count: int) -> list[str]:
    """distinct playlist names: the list in a seeded order, then numbered repeats."""
    order = rng.permutation(len(PLAYLIST_NAMES)).tolist()
    names = [PLAYLIST_NAMES[i] for i in order]
    while len(names) < count:
        names.append(f"{PLAYLIST_NAMES[order[len(names) % len(order)]]} {len(names)}")
    return names[:count]
