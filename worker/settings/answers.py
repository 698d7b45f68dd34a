"""what an answer is made of: the engine's fusion and its per-artist rule."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from engine.recommend import DEFAULT_FUSION, DEFAULT_MAX_PER_ARTIST
from engine.types import FusionMode
from worker.settings.base import Section


class AnswerSettings(Section):
    title = "Answers"

    fusion_mode: FusionMode = Field(
        default=DEFAULT_FUSION,
        description="how per-query candidate lists are fused: 'proportional' (slots "
        "shared by cluster size, each cluster's best pick first; chosen with `plyr-recs "
        "bench quality`) or 'rrf' (plyr.fm's original reciprocal rank fusion).",
    )
    max_tracks_per_artist: Annotated[int, Field(ge=1, le=100)] = Field(
        default=DEFAULT_MAX_PER_ARTIST,
        description="most tracks of one artist in an answer (plyr.fm's own rule for its "
        "'for you' feed), applied after eligibility.",
    )
