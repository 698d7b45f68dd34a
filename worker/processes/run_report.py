"""what `plyr-recs run` reports at the end: the request it printed, made for real, and
the run's summary (`--summary FILE`, for scripts and the tests)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

import httpx

from engine.cache import cache_key, cache_key_pattern
from jetstream.consumer import JetstreamConsumer
from worker.demo import DemoSession, ExpectedPlaylist
from worker.processes.live_view import LiveView
from worker.recs.services import Services

SELF_CHECK_TIMEOUT = 10.0


@dataclass
class ApiCheck:
    """the printed request, made by the run itself once the work is done."""

    url: str
    viewer_did: str
    status: int | None = None
    body: Any = None


def pick_playlist(session: DemoSession) -> ExpectedPlaylist | None:
    """the live playlist with the most tracks: the one the printed request asks for."""
    alive = [e for e in session.expected.values() if not e.deleted and e.track_uris]
    return max(alive, key=lambda e: len(set(e.track_uris))) if alive else None


def curl_line(check: ApiCheck, token: str) -> str:
    return " ".join(
        [
            "curl",
            "-H",
            shlex.quote(f"X-Internal-Token: {token}"),
            "-H",
            shlex.quote(f"X-Viewer-Did: {check.viewer_did}"),
            shlex.quote(check.url),
        ]
    )


async def self_check(check: ApiCheck, token: str) -> None:
    headers = {"X-Internal-Token": token, "X-Viewer-Did": check.viewer_did}
    async with httpx.AsyncClient(timeout=SELF_CHECK_TIMEOUT) as client:
        response = await client.get(check.url, headers=headers)
    check.status = response.status_code
    check.body = response.json() if response.content else None


async def playlist_report(services: Services, session: DemoSession) -> list[dict[str, Any]]:
    """each playlist's final state and whether the cache holds it (for --summary)."""
    rows = []
    for expected in session.expected.values():
        if expected.deleted or expected.cid is None:
            keys = [
                key
                async for key in services.redis.scan_iter(
                    match=cache_key_pattern(expected.playlist_id)
                )
            ]
            cached = bool(keys)
        else:
            cached = bool(
                await services.redis.exists(cache_key(expected.playlist_id, expected.cid))
            )
        rows.append(
            {
                "playlist_uri": expected.playlist_uri,
                "playlist_id": expected.playlist_id,
                "name": expected.name,
                "cid": expected.cid,
                "deleted": expected.deleted,
                "tracks": len(set(expected.track_uris)),
                "cached": cached,
            }
        )
    return rows


def consumer_counts(consumer: JetstreamConsumer) -> dict[str, int]:
    stats = consumer.stats
    return {
        "frames": stats.frames,
        "playlist changes": stats.changes,
        "skipped": sum(stats.skipped.values()),
        "invalid": sum(stats.invalid.values()),
    }


async def summary(
    *,
    reason: str,
    view: LiveView,
    consumer: JetstreamConsumer,
    check: ApiCheck | None,
    services: Services,
    session: DemoSession | None,
) -> dict[str, Any]:
    """the run as JSON: what was sent, consumed, computed, and what the cache holds."""
    return {
        "reason": reason,
        "frames_sent": view.tally.frames_sent,
        "consumer": consumer_counts(consumer),
        "consumer_invalid": dict(consumer.stats.invalid),
        "consumer_skipped": dict(consumer.stats.skipped),
        "outcomes": dict(view.tally.outcomes),
        "strategies": dict(view.tally.strategies),
        "compute_ms_p50": view.tally.percentile(0.5),
        "compute_ms_p99": view.tally.percentile(0.99),
        "forgotten": view.tally.forgotten,
        "dropped": view.tally.dropped,
        "api_check": None if check is None else check.__dict__,
        "playlists": await playlist_report(services, session) if session else [],
    }
