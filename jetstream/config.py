"""everything the consumer is told, in one frozen value.

the consumer never reads the environment itself: the worker's wiring builds a
`ConsumerConfig` from its settings (`worker.wiring.consumer_config`), tests and
benchmarks build their own, and each hands it over with the clients it owns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jetstream.flood import FloodLimits
from jetstream.frames import FrameLimits

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
