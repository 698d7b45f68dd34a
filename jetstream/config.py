"""everything the consumer is told, in one frozen value built from `Settings`.

the consumer never reads the environment itself: `plyr-recs jetstream`, the
embedded `plyr-recs run`, tests and the benchmark each build a `ConsumerConfig`
and hand it over with the clients they own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Self

from jetstream.flood import FloodLimits
from jetstream.frames import FrameLimits
from jetstream.records import RecordLimits
from worker.settings import Settings

# websockets' own message bound. far above `max_frame_bytes` on purpose: a frame
# the library refuses kills the connection, the reconnect asks for the same
# cursor, and the consumer would loop on that frame forever. a frame between the
# two bounds is instead read, counted as too large and skipped.
WEBSOCKET_MAX_SIZE = 64 * 1024 * 1024


@dataclass(frozen=True)
class ConsumerConfig:
    hosts: tuple[str, ...]
    limits: FrameLimits = field(default_factory=FrameLimits)
    debounce_seconds: float = 2.0
    batch_frames: int = 256
    cursor_flush_seconds: float = 1.0
    cursor_rewind_seconds: float = 5.0
    rotation_rewind_seconds: float = 60.0
    lost_state_rewind_seconds: float = 86_400.0
    backoff_base_seconds: float = 0.5
    backoff_cap_seconds: float = 30.0
    open_timeout_seconds: float = 10.0
    rev_ttl_seconds: int = 7 * 86_400
    stats_seconds: float = 30.0
    flood: FloodLimits = field(default_factory=FloodLimits)
    # see `Settings.jetstream_blind_host_seconds` for why 900; 0 turns the watch off.
    blind_host_seconds: float = 900.0
    v2_zstd: bool = True  # ask v2 hosts for dictionary zstd frames
    v1_deflate: bool = True  # offer permessage-deflate to v1 hosts

    @classmethod
    def from_settings(cls, settings: Settings, *, hosts: tuple[str, ...] | None = None) -> Self:
        """the consumer as configured; `hosts` overrides the settings' endpoints (the
        embedded mode points it at its own replay server)."""
        return cls(
            hosts=hosts or settings.jetstream_hosts,
            limits=FrameLimits(
                list_collection=settings.list_collection,
                max_frame_bytes=settings.jetstream_max_frame_bytes,
                record=RecordLimits(
                    track_collection=settings.track_collection,
                    max_items=settings.list_max_items,
                    max_name_length=settings.list_max_name_length,
                ),
            ),
            debounce_seconds=settings.debounce_seconds,
            batch_frames=settings.jetstream_batch_frames,
            cursor_flush_seconds=settings.jetstream_cursor_flush_seconds,
            cursor_rewind_seconds=settings.jetstream_cursor_rewind_seconds,
            rotation_rewind_seconds=settings.jetstream_rotation_rewind_seconds,
            lost_state_rewind_seconds=settings.jetstream_lost_state_rewind_seconds,
            backoff_base_seconds=settings.jetstream_backoff_base_seconds,
            backoff_cap_seconds=settings.jetstream_backoff_cap_seconds,
            open_timeout_seconds=settings.jetstream_open_timeout_seconds,
            rev_ttl_seconds=settings.jetstream_rev_ttl_seconds,
            stats_seconds=settings.jetstream_stats_seconds,
            blind_host_seconds=settings.jetstream_blind_host_seconds,
            v2_zstd=settings.jetstream_v2_zstd,
            v1_deflate=settings.jetstream_v1_deflate,
            flood=FloodLimits(
                changes_per_minute=settings.jetstream_did_changes_per_minute,
                burst=settings.jetstream_did_burst,
                max_pending=settings.jetstream_did_max_pending,
            ),
        )
