"""server-side scripts: a compare-and-set that is one round trip instead of a
WATCH, the reads and a MULTI/EXEC (three or more, and each a wake-up of the event loop).

a script runs atomically on the server, so what it reads cannot change before it
writes, the guarantee the WATCH gave. it is sent by its SHA1 (`EVALSHA`); a server
that does not have it (restarted, `SCRIPT FLUSH`) gets the source once (`EVAL`),
which also loads it. the embedded mode's fakeredis runs them through lupa.

Redis Cluster: a script may only touch keys of one hash slot. the scripts here
declare every key they touch in KEYS; the cache write's keys (the entry, the
playlist's state and version tokens, its lock, the withdrawal indexes) are in several
slots, as they were in the MULTI/EXEC it replaces (which Cluster refuses too).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Final

from redis.exceptions import NoScriptError

# a Lua function for the scripts that store an answer (`worker.store.cache.WRITE`,
# `worker.store.speculative.PUT`): the ids of `ids` marked withdrawn in the sorted set
# `key` (scored by expiry, so marked while their score is past `now`). a script that
# finds any writes nothing and replies {'withdrawn', ids...}; the caller screens the
# answer and writes again
WITHDRAWN_AMONG: Final = """
    local function withdrawn_among(key, ids, now)
        local gone = {}
        if #ids == 0 then return gone end
        local scores = redis.call('ZMSCORE', key, unpack(ids))
        for i = 1, #ids do
            if scores[i] and tonumber(scores[i]) > tonumber(now) then
                gone[#gone + 1] = ids[i]
            end
        end
        return gone
    end
"""


def outcome(reply: Sequence[Any]) -> str:
    """the first word of a script's reply ('ok', 'withdrawn', ...), whatever the
    client's decoding."""
    first = reply[0]
    return first.decode() if isinstance(first, bytes) else str(first)


class Script:
    """a Lua script run by its SHA1, loaded on first use by each server."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    async def __call__(self, redis: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await redis.eval(self.source, len(keys), *keys, *args)
