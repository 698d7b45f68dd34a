"""blind-host detection: a host that stays connected but delivers none of plyr.fm's commits.

the failure (plyr.fm's incident of 2026-07-30, again on 2026-08-08): one public
Jetstream host kept the connection alive and kept sending identity and account
events (and other collections) but none of `fm.plyr.*`, for ten hours. nothing
disconnects, so rotation on error never fires, and every identity event pushes
the cursor forward past what the host withheld: even a later reconnect resumes
after the loss.

so the watch keeps its own position, the *anchor*: the stream position
(`time_us`) through which plyr.fm's commits are known to have been delivered.
it moves with every plyr.fm commit (any collection of the namespace: a like or
a track counts, that is why the subscription asks for `fm.plyr.*`) and never
with identity events. the host is judged blind when the stream has moved on
`window_seconds` past the anchor. time is the stream's own (`time_us`), not the
wall clock: a replay after a rotation is judged by the same measure as the live
tail, and the tests need no sleeps.

on a rotation the consumer resumes from the anchor (rewound), so the next host
replays the suspect window and delivers what the blind one withheld. plyr.fm
is small: a quiet hour (or night) has no commits at all, and a quiet window is
indistinguishable from a blind host by looking at one host. the watch does not
try to tell them apart; it makes the false rotation cheap instead. the next
host replays the window once, and when its stream passes the point the
previous host had reached without any plyr.fm commit, two hosts agree the
window was quiet: the anchor moves there (`confirm_until`). so a quiet night
costs one reconnect per window and reads each quiet window twice, never the
whole night again and again.

pure logic, no I/O: the consumer feeds it each batch's positions and asks.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BlindHostWatch:
    """the anchor and the suspicion, across connections of one consumer."""

    window_seconds: float
    anchor_us: int | None = None  # plyr.fm's commits are complete up to here
    newest_us: int | None = None  # the newest position of the current connection
    confirm_until_us: int | None = None  # what the previous, suspected host reached

    @property
    def enabled(self) -> bool:
        return self.window_seconds > 0

    def connected(self, position_us: int | None) -> None:
        """a new connection resuming after `position_us` (the done position; None on
        a first start, when the first frame sets the anchor)."""
        self.newest_us = None
        if self.anchor_us is None:
            self.anchor_us = position_us

    def observe(self, newest_us: int | None, plyr_us: int | None) -> None:
        """a handled batch: its newest position, and the stream position of its last
        plyr.fm commit (None when it had none)."""
        if newest_us is None:
            return
        if self.anchor_us is None:
            self.anchor_us = newest_us
        if plyr_us is not None and plyr_us > self.anchor_us:
            self.anchor_us = plyr_us
        confirm = self.confirm_until_us
        if confirm is not None and newest_us >= confirm:
            # a second host went through the suspected window without a plyr.fm
            # commit either (or with them, and the anchor moved already).
            self.anchor_us = max(self.anchor_us, confirm)
            self.confirm_until_us = None
        if self.newest_us is None or newest_us > self.newest_us:
            self.newest_us = newest_us

    def silent_seconds(self) -> float:
        """how far this connection's stream has moved past the anchor."""
        if self.anchor_us is None or self.newest_us is None:
            return 0.0
        return max(0, self.newest_us - self.anchor_us) / 1_000_000

    def is_blind(self) -> bool:
        return self.enabled and self.silent_seconds() > self.window_seconds

    def missed(self, since_us: int | None) -> None:
        """someone (the reconcile loop) found versions the stream never delivered,
        committed after `since_us`: the anchor moves back there."""
        if since_us is not None and (self.anchor_us is None or since_us < self.anchor_us):
            self.anchor_us = since_us

    def rotated(self) -> int | None:
        """the connection is abandoned as blind: the position to resume from (the
        anchor, before the consumer's rewind), and the window the next host must
        confirm."""
        if self.newest_us is not None and (
            self.confirm_until_us is None or self.newest_us > self.confirm_until_us
        ):
            self.confirm_until_us = self.newest_us
        return self.anchor_us
