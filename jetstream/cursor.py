"""the consumer's position in the firehose: `time_us` of the last event whose work is done.

"done" means enqueued (or deliberately skipped: a skipped or rejected frame needs
no work, so it is done the moment it is judged). the position moves in memory
after every fully handled batch and is written to Redis on an interval and on
shutdown; a crash between two flushes replays at most one interval, which the
rev guard absorbs.

on (re)connect the consumer asks Jetstream for events from the cursor rewound a
few seconds: `time_us` is stamped by each host when the event reached it, so a
small rewind covers events that arrived out of order around the cut, and a
larger one covers a different host whose clock positions the same events
differently.

the position is kept per wire kind. `time_us` is the v1 cursor and is portable
across v1 hosts (approximately: hence the rewinds), and v2 hosts accept it too
(a value >= 1e15 is a timestamp there). a v2 `seq` is exact but means
something on one instance only, so it is kept with the instance's URL and used
only to resume on that same instance; moving to another resumes by time.

and an instance's numbering can start again (a restart that lost its store,
another instance behind one URL): a seq below the one we resumed from means the
old seq is meaningless there. then nothing of that batch moves the position, the
seq is forgotten, and the consumer reconnects by time (issue 23: it kept asking
from the old higher seq, and the next edit was never delivered).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis.asyncio as aioredis

from jetstream.frames import MAX_TIME_US
from jetstream.keys import JetstreamKeys

logger = logging.getLogger(__name__)


def rewound(time_us: int, seconds: float) -> int:
    """`time_us` moved back by `seconds`, never below the epoch."""
    return max(0, time_us - round(seconds * 1_000_000))


class CursorStore:
    """the cursor key in Redis (see `jetstream.keys` for why it has no TTL)."""

    def __init__(self, redis: aioredis.Redis, keys: JetstreamKeys) -> None:
        self._redis = redis
        self._key = keys.cursor
        self._seq_key = keys.cursor_v2

    async def load(self) -> int | None:
        raw = await self._redis.get(self._key)
        if raw is None:
            return None
        try:
            time_us = int(raw)
        except ValueError:
            logger.warning("ignoring a malformed stored cursor %r", raw[:64])
            return None
        if not 0 < time_us < MAX_TIME_US:
            logger.warning("ignoring an out-of-range stored cursor %d", time_us)
            return None
        return time_us

    async def save(self, time_us: int) -> None:
        await self._redis.set(self._key, str(time_us))

    async def load_seq(self) -> SeqPosition | None:
        raw = await self._redis.get(self._seq_key)
        if raw is None:
            return None
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
        seq_text, _, instance = text.partition(" ")
        if not seq_text.isdigit() or not instance or len(text) > 2048:
            logger.warning("ignoring a malformed stored v2 cursor %r", text[:64])
            return None
        return SeqPosition(instance, int(seq_text))

    async def save_seq(self, position: SeqPosition | None) -> None:
        if position is None:
            await self._redis.delete(self._seq_key)
        else:
            await self._redis.set(self._seq_key, f"{position.seq} {position.instance}")


@dataclass(frozen=True, slots=True)
class SeqPosition:
    """the seq of the newest done event on one v2 instance."""

    instance: str
    seq: int


class Cursor:
    """the done position in memory and what Redis has last been told.

    `instance` is the v2 host the consumer is connected to (None on v1): the
    seq of an event is recorded against it. `hold` caps what is written to
    Redis (not what is done in memory): the blind-host watch sets it to the
    last position plyr.fm's commits are known complete, so a restart during a
    suspected blind window resumes before that window, not after it.
    """

    def __init__(self, store: CursorStore) -> None:
        self.store = store
        self.done: int | None = None
        self.flushed: int | None = None
        self.instance: str | None = None
        self.seq: SeqPosition | None = None
        self.seq_flushed: SeqPosition | None = None
        self.hold: int | None = None
        self._seq_loaded = False
        self._seq_backwards = False

    def advance(self, time_us: int, seq: int | None = None) -> None:
        """mark everything up to `time_us` (and, on v2, `seq`) done; never moves
        backwards (a rewound reconnect replays older events, which must not pull
        the cursor back)."""
        if self._went_backwards(seq):
            return
        if self.done is None or time_us > self.done:
            self.done = time_us
            if seq is None:
                self.seq = None  # a v1 host moved us on: a stored seq is behind now
        self.advance_seq(seq)

    def advance_seq(self, seq: int | None) -> None:
        if seq is None or self.instance is None or self._went_backwards(seq):
            return
        if self.seq is None or self.seq.instance != self.instance or seq > self.seq.seq:
            self.seq = SeqPosition(self.instance, seq)

    def start_for(self, instance: str | None, position: int | None, rewind: float) -> int | None:
        """the cursor to ask a host for: on a v2 `instance` the newest done event came
        from, its exact seq; else the time position rewound (a v2 host reads a value
        >= 1e15 as a timestamp)."""
        if instance is not None:
            seq = self.seq_for(instance)
            if seq is not None:
                return seq
        return None if position is None else rewound(position, rewind)

    def _went_backwards(self, seq: int | None) -> bool:
        """a seq of this instance below our own: its numbering started again. the
        batch moves nothing (its events may sit past a gap the host would replay by
        time), and the seq is dropped; `take_seq_backwards` tells the consumer."""
        position = self.seq
        if seq is None or position is None or position.instance != self.instance:
            return False
        if seq >= position.seq:  # a resume by seq replays its own seq (inclusive)
            return False
        self.seq = None
        self._seq_backwards = True
        return True

    def take_seq_backwards(self) -> bool:
        """whether a seq went backwards since the last call (then: reconnect by time)."""
        went, self._seq_backwards = self._seq_backwards, False
        return went

    def forget_seq(self) -> None:
        """the stored seq is no use (below the instance's floor, or the position
        moved back past it): resume by time."""
        self.seq = None

    def seq_for(self, instance: str) -> int | None:
        """the seq to resume from on `instance`, if the newest done v2 event came
        from it."""
        position = self.seq
        return position.seq if position is not None and position.instance == instance else None

    def mark_unflushed(self) -> None:
        """Redis may have lost what it was told: the next flush writes again."""
        self.flushed = None
        self.seq_flushed = None

    def undo_after(self, time_us: int) -> None:
        """the work after `time_us` is gone (Redis lost the tasks it enqueued): the done
        position moves back there, the only move backwards there is."""
        if self.done is not None and time_us < self.done:
            self.done = time_us
            self.flushed = None
            self.seq = None  # a seq past the new position would skip what is undone

    async def resume_position(self) -> int | None:
        """where to resume: this process's own position if it has one (it is at
        least as new as Redis's, and survives Redis losing its data), else Redis's."""
        if not self._seq_loaded:
            self.seq = self.seq or await self.store.load_seq()
            self.seq_flushed = self.seq
            self._seq_loaded = True
        if self.done is not None:
            return self.done
        stored = await self.store.load()
        self.flushed = stored
        self.done = stored
        return stored

    async def flush(self) -> bool:
        """write the done position if it moved; True when something was written."""
        done = self.done
        if done is not None and self.hold is not None:
            done = min(done, self.hold)
        written = False
        if done is not None and done != self.flushed:
            await self.store.save(done)
            self.flushed = done
            written = True
        # the seq is only written while the time position is not held back: a
        # seq is exact, and resuming from it would skip a held-back window.
        seq = self.seq if self.hold is None or done == self.done else None
        if self._seq_loaded and seq != self.seq_flushed:
            await self.store.save_seq(seq)
            self.seq_flushed = seq
            written = True
        return written
