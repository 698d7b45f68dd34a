"""a row of `python -m bench abuse`'s components table: a part other than the API (the
consumer, the reconcile pass's reads, the editor page) run for real on loopback, once
quiet and once under the attack, in the same run."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ComponentRow:
    name: str
    attack: str  # what was sent, in words
    legit_quiet: str  # the legitimate outcome without the attack
    legit_attack: str  # and under it
    resource: str  # what the attack cost the component
    bound: str  # what the resource and the outcome are held to
    ok: bool  # the legitimate outcome right and the resource inside its bound
    note: str = ""


@dataclass(frozen=True)
class Component:
    key: str  # its `--only` name
    run: Callable[[str, float], Coroutine[Any, Any, ComponentRow]]  # (redis URL, seconds)


def redis_db(url: str, db: int) -> str:
    """the same redis-server, logical database `db`: each run starts from nothing."""
    return url.rsplit("/", 1)[0] + f"/{db}"
