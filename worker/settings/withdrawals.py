"""withdrawals: how fast a track plyr.fm no longer shows leaves every answer."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from worker.settings.base import Section


class WithdrawalSettings(Section):
    title = "Withdrawals"

    withdrawal_check_seconds: Annotated[float, Field(ge=0.1, le=60)] = Field(
        default=1.0,
        description="how often the withdrawal check round runs (one per deployment, however "
        "many workers): it asks plyr.fm's database, in one query, which tracks of the live "
        "answers are no longer surfaceable (takedown, label, visibility, deactivated artist, "
        "row gone), marks them withdrawn and recomputes the playlists that carried them.",
    )
    withdrawal_stale_seconds: Annotated[float, Field(ge=0.5, le=300)] = Field(
        default=3.0,
        description="the API serves a cached answer screened by the withdrawn set only while "
        "a check round began within this many seconds (and after the API last regained "
        "Redis); otherwise it checks the answer's tracks with plyr.fm's database itself. "
        "Below the 5 s in which a withdrawal must leave every answer.",
    )
