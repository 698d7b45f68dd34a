"""the server side of `python -m bench api`: the real API under uvicorn, one process.

run as `python -m bench.api_server PORT REDIS_URL PLAYLISTS [unscreened]`: it builds a
generated catalogue (an InMemoryCatalog and an ExactStore, deterministic from
a seed, so the load generator can name the same playlists without being sent
them), fills the cache for every playlist through `Recommender.refresh` (the
worker's path), and serves `worker.api.app.create_app` on 127.0.0.1:PORT exactly as
`plyr-recs api` does, plus one bare route: the floor of the stack (uvicorn +
FastAPI, no auth, no Redis) to measure against.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

import numpy as np
from fastapi.responses import Response
from pydantic import SecretStr

from engine.eligibility import ArtistRecord, TrackRecord
from engine.exact_store import ExactStore
from engine.memory_catalog import InMemoryCatalog
from engine.types import PlaylistRow

if TYPE_CHECKING:
    from worker.recs.services import Services

INTERNAL_TOKEN: Final = "bench-internal-token"
FLOOR_ROUTE: Final = "/bench/floor"
SEED: Final = 20260101
TRACKS: Final = 10_000
ARTISTS: Final = 200
REGIONS: Final = 16  # "sound regions" the generated embeddings cluster around
DIMENSIONS: Final = 512
_BASE32: Final = "abcdefghijklmnopqrstuvwxyz234567"


@dataclass(frozen=True, slots=True)
class BenchPlaylist:
    playlist_id: str
    owner_did: str
    cid: str
    track_ids: tuple[int, ...]


def _base32(digest: bytes, length: int) -> str:
    return "".join(_BASE32[byte % 32] for byte in digest[:length])


def artist_did(index: int) -> str:
    return "did:plc:" + _base32(hashlib.sha256(f"artist {index}".encode()).digest(), 24)


def track_uri(track_id: int) -> str:
    return f"at://{artist_did(track_id % ARTISTS)}/fm.plyr.track/3bench{track_id:07d}"


def bench_playlists(count: int) -> list[BenchPlaylist]:
    """`count` playlists of 5..40 tracks, each mostly from one region (deterministic)."""
    rng = np.random.default_rng(SEED)
    playlists = []
    for index in range(count):
        size = int(rng.integers(5, 41))
        region = int(rng.integers(REGIONS))
        in_region = np.arange(region, TRACKS, REGIONS)
        track_ids = tuple(int(t) for t in rng.choice(in_region, size=size, replace=False))
        digest = hashlib.sha256(f"playlist {index}".encode()).digest()
        playlists.append(
            BenchPlaylist(
                playlist_id=f"{digest[:4].hex()}-{digest[4:6].hex()}-4{digest[6:8].hex()[1:]}-"
                f"8{digest[8:10].hex()[1:]}-{digest[10:16].hex()}",
                owner_did=artist_did(index % ARTISTS),
                cid="bafyrei" + _base32(digest[16:], 16) + "a" * 36,
                track_ids=track_ids,
            )
        )
    return playlists


def bench_world(playlists: list[BenchPlaylist]) -> tuple[InMemoryCatalog, ExactStore]:
    rng = np.random.default_rng(SEED + 1)
    regions = rng.standard_normal((REGIONS, DIMENSIONS)).astype(np.float32)
    noise = rng.standard_normal((TRACKS, DIMENSIONS)).astype(np.float32)
    vectors = regions[np.arange(TRACKS) % REGIONS] * 3.0 + noise
    store = ExactStore(np.arange(TRACKS), vectors)
    artists = [
        ArtistRecord(did=artist_did(i), handle=f"artist{i}.test", display_name=f"artist {i}")
        for i in range(ARTISTS)
    ]
    tracks = [
        TrackRecord(
            id=t,
            title=f"track {t}",
            artist_did=artist_did(t % ARTISTS),
            record_uri=track_uri(t),
            image_url=f"https://images.example/{t}.webp",
        )
        for t in range(TRACKS)
    ]
    rows = [
        PlaylistRow(
            playlist_id=p.playlist_id,
            owner_did=p.owner_did,
            record_uri=f"at://{p.owner_did}/fm.plyr.list/3benchlist{i:04d}",
            record_cid=p.cid,
            is_private=False,
            updated_at=datetime(2026, 1, 1, tzinfo=UTC),
            items=None,
        )
        for i, p in enumerate(playlists)
    ]
    return InMemoryCatalog(artists=artists, tracks=tracks, playlists=rows), store


async def warm_cache(services: Services, playlists: Sequence[BenchPlaylist]) -> None:
    """every playlist's answer in the cache, as the worker would leave it."""
    from worker.recs.version import PlaylistVersion, rev_at

    rev = rev_at(datetime.now(UTC))
    for playlist in playlists:
        uris = tuple(track_uri(t) for t in playlist.track_ids)
        version = PlaylistVersion(playlist.playlist_id, playlist.cid, rev, "", uris)
        await services.recommender.ensure(version, lease=None)


async def serve_bench(
    port: int, redis_url: str, playlist_count: int, *, screen_withdrawals: bool = True
) -> None:
    import uvicorn

    from worker.api.app import create_app, server_config
    from worker.identity.auth import Authenticator
    from worker.ops.heap import freeze_startup_heap
    from worker.recs.services import open_services
    from worker.settings import Settings

    playlists = bench_playlists(playlist_count)
    catalog, store = bench_world(playlists)
    settings = Settings(
        _env_file=None, redis_url=redis_url, internal_api_token=SecretStr(INTERNAL_TOKEN)
    )
    async with open_services(settings, catalog=catalog, store=store) as services:
        await warm_cache(services, playlists)
        authenticator = Authenticator.from_settings(settings)
        app = create_app(services, authenticator, screen_withdrawals=screen_withdrawals)
        app.add_api_route(FLOOR_ROUTE, _floor, methods=["GET"])
        config = server_config(app, host="127.0.0.1", port=port)
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # no start-up banner
        freeze_startup_heap()  # as `plyr-recs api` does
        try:
            await uvicorn.Server(config).serve()
        finally:
            await authenticator.aclose()


async def _floor() -> Response:
    return Response(b'{"ok":true}', media_type="application/json")


if __name__ == "__main__":
    from uvicorn.loops.auto import auto_loop_factory

    logging.basicConfig(level=logging.WARNING)
    # the loop `plyr-recs api` runs on (worker.api.app.run): uvloop when installed
    with asyncio.Runner(loop_factory=auto_loop_factory()) as runner:
        # an optional 4th argument "unscreened": no withdrawal screening (bench withdrawn)
        screen = sys.argv[4:5] != ["unscreened"]
        runner.run(
            serve_bench(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), screen_withdrawals=screen)
        )
