"""the event loop the long-running processes (worker, consumer, embedded mode) run on.

`EVENT_LOOP` (default `uvloop`): uvloop where it is installed (it comes with
`uvicorn[standard]`, which the API already runs on), else asyncio's own loop. a
recompute is a dozen socket round trips (Redis, PostgreSQL, turbopuffer, a PDS); on
asyncio's pure-Python loop, scheduling and transports were about a third of a worker's
CPU during a cold deploy (`py-spy` on `python -m bench scale`'s worker). uvloop does
that work in C.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")
LoopName = Literal["uvloop", "asyncio"]

logger = logging.getLogger(__name__)


def loop_factory(wanted: LoopName) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """the factory of the loop `wanted`: None is asyncio's (asked for, or no uvloop)."""
    if wanted == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:  # an install without uvicorn[standard], or a platform without it
        logger.warning("EVENT_LOOP=uvloop, but uvloop is not installed: running on asyncio's")
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], *, loop: LoopName) -> T:
    """`asyncio.run(main)` on the loop `loop` names (see the module's docstring)."""
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        return runner.run(main)
