"""the API's side of a reliability run: asked for every live playlist while the run
breaks things, and once more after it settled, when every answer must be the cache's.

the API is built exactly as `plyr-recs api` builds it (`create_app` over its own
`open_services`: its own Redis client, PostgreSQL pool and turbopuffer client)
and reached through httpx's ASGI transport. the owners are plyr.fm's backend's
way in (`X-Internal-Token` + `X-Viewer-Did`). no owner has a PDS in this world,
so a miss the worker's state cannot serve answers `available: false` and caches
nothing: the API never fills in an entry the worker lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson

from bench.loopback.asgi import app_client
from bench.reliability.stream import PlaylistLife, SyntheticStream
from engine.cache import cache_key
from worker.api.answers import AnswerLimits
from worker.api.app import create_app
from worker.identity.auth import Authenticator
from worker.recs.services import open_services
from worker.settings import Settings

PROBE_INTERVAL_SECONDS = 0.05  # ~20 requests a second while the run goes on
FINAL_LIMIT = 10


# beyond the API's cache retry period before the final pass
FINAL_PASS_SLACK_SECONDS = 0.5


class ApiProbe:
    """asks for recommendations round the live playlists; counts every status."""

    def __init__(self, client: httpx.AsyncClient, stream: SyntheticStream, token: str) -> None:
        self.client = client
        self.stream = stream
        self.token = token
        self.statuses: Counter[int] = Counter()
        self.final_mismatches: list[str] = []

    @property
    def server_errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status >= 500)

    @classmethod
    @asynccontextmanager
    async def running(cls, settings: Settings, stream: SyntheticStream) -> AsyncIterator[ApiProbe]:
        assert settings.internal_api_token is not None
        authenticator = Authenticator.from_settings(settings)
        try:
            async with open_services(settings) as services:
                app = create_app(services, authenticator)
                async with app_client(app) as client:
                    probe = cls(client, stream, settings.internal_api_token.get_secret_value())
                    loop = asyncio.create_task(probe._ask_round_and_round())
                    try:
                        yield probe
                    finally:
                        loop.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await loop
        finally:
            await authenticator.aclose()

    async def ask(self, life: PlaylistLife, limit: int = 3) -> httpx.Response:
        response = await self.client.get(
            f"/playlists/{life.playlist_id}/recommendations",
            params={"limit": limit},
            headers={"X-Internal-Token": self.token, "X-Viewer-Did": life.owner_did},
        )
        self.statuses[response.status_code] += 1
        return response

    async def _ask_round_and_round(self) -> None:
        lives = self.stream.live()
        index = 0
        while True:
            await self.ask(lives[index % len(lives)])
            index += 1
            await asyncio.sleep(PROBE_INTERVAL_SECONDS)

    async def final_pass(self, redis: Any) -> list[str]:
        """ask once for every live playlist; each answer must be its cached final entry
        (the playlist ids whose answer was not are returned, and kept).

        judged once the API is back on the cache: after a Redis fault it computes
        without the cache for `cache_retry_seconds` on purpose (no request waits on a
        Redis that just failed), and those answers are not the cache's."""
        await asyncio.sleep(AnswerLimits().cache_retry_seconds + FINAL_PASS_SLACK_SECONDS)
        for life in self.stream.live():
            assert life.final is not None
            response = await self.ask(life, FINAL_LIMIT)
            raw = await redis.get(cache_key(life.playlist_id, life.final.cid))
            cached = orjson.loads(raw) if raw is not None else None
            expected = (
                {"tracks": cached["tracks"][:FINAL_LIMIT], "available": cached["available"]}
                if cached is not None
                else None
            )
            if response.status_code != 200 or response.json() != expected:
                self.final_mismatches.append(life.playlist_id)
        return self.final_mismatches
