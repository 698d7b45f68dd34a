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
from worker.api.app import ApiState, create_app
from worker.api.breaker import CacheBreaker
from worker.identity.auth import Authenticator
from worker.recs.services import open_services
from worker.settings import Settings

PROBE_INTERVAL_SECONDS = 0.05  # ~20 requests a second while the run goes on
FINAL_LIMIT = 10
# the most the final pass waits for the API's cache breaker to close: it closes by
# itself `cache_retry_seconds` after it opened, unless Redis keeps failing
BREAKER_WAIT_SECONDS = 3 * AnswerLimits().cache_retry_seconds


class ApiProbe:
    """asks for recommendations round the live playlists; counts every status."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        stream: SyntheticStream,
        token: str,
        breaker: CacheBreaker,
    ) -> None:
        self.client = client
        self.stream = stream
        self.token = token
        self.breaker = breaker  # the API's own: whether it asks the cache now
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
                    state: ApiState = app.state.api
                    token = settings.internal_api_token.get_secret_value()
                    probe = cls(client, stream, token, state.answers.breaker)
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
        Redis that just failed), and those answers are not the cache's. the API's own
        breaker says when that is (a fixed wait of the retry period cost every run
        2.5 s, though the breaker had long closed by the time a run settled)."""
        await self.back_on_the_cache()
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

    async def back_on_the_cache(self) -> None:
        """until the API's cache breaker is closed (at most BREAKER_WAIT_SECONDS; past
        that the pass goes ahead, and its answers tell what the API serves)."""
        deadline = asyncio.get_running_loop().time() + BREAKER_WAIT_SECONDS
        while asyncio.get_running_loop().time() < deadline:
            if self.breaker.closed:
                return
            await asyncio.sleep(PROBE_INTERVAL_SECONDS)
