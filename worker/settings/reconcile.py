"""the reconcile loop: its passes over plyr.fm's playlists, and which entries it
refreshes before they expire."""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import Field

from worker.settings.base import Section

# the most playlists one reconcile batch carries (`worker.tasks.batch`): its items run
# side by side, their searches sent together (16 searches a request)
MAX_BATCH_ITEMS: Final = 16
DEFAULT_BATCH_SIZE: Final = 8


class ReconcileSettings(Section):
    title = "The reconcile loop"

    reconcile_interval_seconds: Annotated[float, Field(ge=1, le=86_400)] = Field(
        default=300.0,
        description="time between two reconcile passes (the first runs when a worker "
        "starts and no pass is scheduled). a pass walks plyr.fm's playlists and enqueues "
        "the recompute of each whose current version is not cached, or is due for refresh.",
    )
    reconcile_max_per_second: Annotated[float, Field(gt=0, le=10_000)] = Field(
        default=50.0,
        description="most recomputes a pass enqueues per second (a cold deploy of 2,000 "
        "playlists takes 40 s at the default); keeps a pass from flooding the workers, "
        "turbopuffer and the owners' PDSes.",
    )
    reconcile_batch_size: Annotated[int, Field(ge=1, le=MAX_BATCH_ITEMS)] = Field(
        default=DEFAULT_BATCH_SIZE,
        description="due public playlists a pass enqueues as one docket task, recomputed "
        "side by side, their turbopuffer searches sent together (docket's own cost, "
        "about a millisecond of worker CPU a task, is paid once for them all, and a "
        "multi-query request carries up to 16 searches). 1: a recompute_playlist task "
        "each, under the playlist's docket key.",
    )
    reconcile_page_size: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=200,
        description="playlists read from plyr.fm's database per page of a pass (keyset "
        "pagination; one pipelined Redis round trip per page).",
    )
    reconcile_heal_grace_seconds: Annotated[float, Field(ge=0, le=86_400)] = Field(
        default=60.0,
        description="how long after a playlist's `updated_at` the firehose has to deliver "
        "its edit before the reconcile counts it missed_by_firehose (plyr.fm's ingest and "
        "the consumer's settle delay both take seconds).",
    )
    refresh_active_days: Annotated[float, Field(gt=0, le=365)] = Field(
        default=14.0,
        description="a playlist edited (its `updated_at`) or viewed through the API within "
        "this many days is active: its entry is recomputed before it expires. an inactive "
        "one lapses and is computed on its next view.",
    )
    refresh_margin_seconds: Annotated[float, Field(ge=0, le=86_400)] = Field(
        default=3600.0,
        description="how long before expiry an active playlist's entry is refreshed, on "
        "top of one reconcile interval (the last pass before expiry does it); covers the "
        "queue and a pass's own length.",
    )
