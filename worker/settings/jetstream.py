"""the Jetstream consumer: its hosts, and every knob of its `ConsumerConfig`,
`FloodLimits`, `FrameLimits` and `RecordLimits`.

each knob is declared with `feeds(Config, "field")` (`worker.settings.feeds`): its
default is the dataclass's own, and `worker.wiring.consumer_config` builds the
dataclasses from these fields by those declarations. a new knob is a dataclass
field (with its default) plus one `feeds` setting here; forgetting either fails
`tests/test_settings_sections.py`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from jetstream.config import ConsumerConfig
from jetstream.flood import FloodLimits
from jetstream.frames import FrameLimits
from jetstream.records import RecordLimits
from jetstream.syntax import NSID
from worker.settings.base import OptionalText, Section, UrlList
from worker.settings.feeds import feeds

# the public Jetstream fleet, rotated on reconnect when neither JETSTREAM_URLS nor
# JETSTREAM_URL is set: the four v1 hosts (jetstream-legacy) and the two v2 hosts
# (bluesky-social/jetstream, `subscribeEvents`). the wires alternate so that a
# rotation away from a host that went blind usually lands on the other
# implementation too; the cursor keeps a position for each wire.
_V2_PATH = "/xrpc/network.bsky.jetstream.subscribeEvents"
PUBLIC_JETSTREAM_HOSTS = (
    "wss://jetstream1.us-east.bsky.network/subscribe",
    f"wss://jetstream.us-east.bsky.network{_V2_PATH}",
    "wss://jetstream2.us-east.bsky.network/subscribe",
    "wss://jetstream1.us-west.bsky.network/subscribe",
    f"wss://jetstream.us-west.bsky.network{_V2_PATH}",
    "wss://jetstream2.us-west.bsky.network/subscribe",
)

NSID_PATTERN = rf"^{NSID}$"

# the settings that choose the hosts; every other field here feeds a dataclass.
HOST_SETTINGS = ("jetstream_url", "jetstream_urls")


class JetstreamSettings(Section):
    title = "The Jetstream consumer"

    jetstream_url: OptionalText = Field(
        default=None,
        description="one Jetstream endpoint (the single-host form of JETSTREAM_URLS). Unset: "
        "the public fleet.",
    )
    jetstream_urls: UrlList = Field(
        default=None,
        description="the Jetstream fleet, rotated on reconnect: ws(s):// URLs separated by "
        "commas or spaces. A path of /subscribe speaks v1, "
        "/xrpc/network.bsky.jetstream.subscribeEvents v2. Wins over JETSTREAM_URL. Unset: "
        "the public fleet (four v1 hosts and two v2 hosts).",
    )
    # plyr.fm is small: its own consumer's logs show fm.plyr.* silent for hours
    # overnight ("~20 rotations a night" at a 1800 s window, plyr.fm #1775), so no
    # window short enough to be useful avoids rotating on a quiet stream. the
    # window is therefore sized for what a rotation costs, not to avoid one: a
    # false rotation loses nothing (the next host resumes from the last plyr.fm
    # position) and costs one handshake plus reading the window's identity and
    # account events again (about 2 MB for 15 min at ~10 frames/s of ~250 B),
    # and a real blind host delays a missed edit by at most the window. 15 min
    # keeps that delay a quarter of the hour in which plyr.fm's write-echo alert
    # pages, at four reconnects per quiet hour.
    jetstream_blind_host_seconds: Annotated[float, Field(ge=0, le=86_400)] = feeds(
        ConsumerConfig,
        "blind_host_seconds",
        description="rotate to another host when no fm.plyr.* commit arrived for this many "
        "seconds of stream while other frames flowed (a host blind to plyr.fm, plyr.fm's "
        "incident of 2026-07-30), resuming from the last plyr.fm commit's position. "
        "0 disables the watch.",
    )
    jetstream_v1_deflate: bool = feeds(
        ConsumerConfig,
        "v1_deflate",
        description="offer permessage-deflate to v1 hosts (a host that declines is read "
        "plain): about a third of the bytes for a fifth more decode CPU.",
    )
    jetstream_v2_zstd: bool = feeds(
        ConsumerConfig,
        "v2_zstd",
        description="ask v2 hosts for dictionary-zstd frames (the dictionary is fetched from "
        "each host); a host without one is read uncompressed.",
    )
    list_collection: str = feeds(
        FrameLimits,
        "list_collection",
        pattern=NSID_PATTERN,
        description="the exact NSID of plyr.fm's list records (staging uses its own).",
    )
    track_collection: str = feeds(
        RecordLimits,
        "track_collection",
        pattern=NSID_PATTERN,
        description="the exact NSID of plyr.fm's track records, which list items must point at.",
    )
    debounce_seconds: Annotated[float, Field(ge=0, le=300)] = feeds(
        ConsumerConfig,
        "debounce_seconds",
        description="settle delay: rapid edits of one playlist within this window collapse "
        "into one recompute of the newest state.",
    )
    list_max_items: Annotated[int, Field(ge=1, le=10_000)] = feeds(
        RecordLimits,
        "max_items",
        description="most items a list record may hold (the lexicon's bound); a bigger "
        "record is rejected and counted, not truncated.",
    )
    list_max_name_length: Annotated[int, Field(ge=1, le=100_000)] = feeds(
        RecordLimits,
        "max_name_length",
        description="longest list name, in characters, a record may carry.",
    )
    jetstream_max_frame_bytes: Annotated[int, Field(ge=16 * 1024, le=16 * 1024 * 1024)] = feeds(
        FrameLimits,
        "max_frame_bytes",
        description="largest Jetstream frame decoded; bigger ones are counted and skipped. "
        "A full 500-item list is about 100 KiB.",
    )
    jetstream_batch_frames: Annotated[int, Field(ge=1, le=10_000)] = feeds(
        ConsumerConfig,
        "batch_frames",
        description="most frames handled together (one guard read, one enqueue pipeline) "
        "when they arrive faster than they are handled.",
    )
    jetstream_cursor_flush_seconds: Annotated[float, Field(ge=0.05, le=300)] = feeds(
        ConsumerConfig,
        "cursor_flush_seconds",
        description="how often the cursor is written to Redis (and always on shutdown); "
        "a crash replays at most this much, which the rev guard absorbs.",
    )
    jetstream_cursor_rewind_seconds: Annotated[float, Field(ge=0, le=3600)] = feeds(
        ConsumerConfig,
        "cursor_rewind_seconds",
        description="how far before the cursor a reconnect to the same host resumes.",
    )
    jetstream_rotation_rewind_seconds: Annotated[float, Field(ge=0, le=86_400)] = feeds(
        ConsumerConfig,
        "rotation_rewind_seconds",
        description="how far before the cursor a connection to a different host (or a "
        "fresh start) resumes: each host stamps time_us itself, so positions differ.",
    )
    jetstream_lost_state_rewind_seconds: Annotated[float, Field(ge=0, le=7 * 86_400)] = feeds(
        ConsumerConfig,
        "lost_state_rewind_seconds",
        description="how far before its position the consumer resumes when it finds Redis "
        "lost its state (restarted empty, failed over, flushed): with the cursor, the rev "
        "guard, docket's queue and the cache gone, it replays the cache's lifetime (24 h) so "
        "every playlist edited since is recomputed. Jetstream keeps about a day.",
    )
    jetstream_backoff_base_seconds: Annotated[float, Field(gt=0, le=60)] = feeds(
        ConsumerConfig,
        "backoff_base_seconds",
        description="first reconnect delay; doubles per failure, with jitter.",
    )
    jetstream_backoff_cap_seconds: Annotated[float, Field(gt=0, le=600)] = feeds(
        ConsumerConfig, "backoff_cap_seconds", description="longest reconnect delay."
    )
    jetstream_open_timeout_seconds: Annotated[float, Field(gt=0, le=120)] = feeds(
        ConsumerConfig,
        "open_timeout_seconds",
        description="time bound on one websocket handshake.",
    )
    jetstream_rev_ttl_seconds: Annotated[int, Field(ge=3600, le=90 * 86_400)] = feeds(
        ConsumerConfig,
        "rev_ttl_seconds",
        description="how long the last accepted rev of a playlist is remembered; longer "
        "than any replay (Jetstream keeps about a day), so a replay is always recognised.",
    )
    jetstream_did_changes_per_minute: Annotated[float, Field(gt=0, le=100_000)] = feeds(
        FloodLimits,
        "changes_per_minute",
        description="pace of new recomputes (and forgets) one repo DID may cause once past "
        "its burst; its further tasks are deferred to this pace, never dropped, so one "
        "account editing many playlists cannot push everyone else's recomputes back. edits "
        "of a playlist whose task is still pending cost nothing (they are coalesced).",
    )
    jetstream_did_burst: Annotated[int, Field(ge=1, le=100_000)] = feeds(
        FloodLimits,
        "burst",
        description="new tasks one DID may cause at once before its pace applies.",
    )
    jetstream_did_max_pending: Annotated[int, Field(ge=1, le=1_000_000)] = feeds(
        FloodLimits,
        "max_pending",
        description="most pending tasks one DID may hold (ten minutes at the default pace); "
        "further playlists of that DID are not precomputed until some run (counted as "
        "skipped:flood_shed; the API still computes them on request).",
    )
    jetstream_did_max_pending_bytes: Annotated[int, Field(ge=64 * 1024, le=1 << 34)] = feeds(
        FloodLimits,
        "max_pending_bytes",
        description="most bytes of task arguments one DID's tasks may hold in Redis "
        "(counted as jetstream.flood.task_bytes) until they finish: pending, running, "
        "retrying (a playlist plyr.fm has not ingested yet waits up to "
        "PLAYLIST_WAIT_SECONDS), or kept as docket's run record; past it that DID's new "
        "work is shed (skipped:flood_shed).",
    )
    jetstream_max_pending_bytes: Annotated[int, Field(ge=64 * 1024, le=1 << 36)] = feeds(
        FloodLimits,
        "max_total_pending_bytes",
        description="most bytes of task arguments all DIDs' tasks together may hold in "
        "Redis until they finish (as JETSTREAM_DID_MAX_PENDING_BYTES); past it new work is "
        "shed. at least JETSTREAM_DID_MAX_PENDING_BYTES.",
    )
    jetstream_stats_seconds: Annotated[float, Field(ge=1, le=3600)] = feeds(
        ConsumerConfig,
        "stats_seconds",
        description="how often the consumer logs its counters and publishes them to Redis "
        "for `plyr-recs status`.",
    )

    @property
    def jetstream_hosts(self) -> tuple[str, ...]:
        if self.jetstream_urls:
            return self.jetstream_urls
        return (self.jetstream_url,) if self.jetstream_url else PUBLIC_JETSTREAM_HOSTS
