"""`plyr-recs run`: the whole service in one process, on embedded defaults.

it exists so a newcomer can watch playlist edits become recommendations with
one command and no servers: a generated demo catalogue (in-memory catalog and
exact vector store), an in-process Redis, docket on `memory://`, and a local
Jetstream replay server playing a generated session of edits. the consumer,
worker and API are the production code, unchanged; each embedded part is
replaced by setting its URL (REDIS_URL, DOCKET_URL, DATABASE_URL,
TURBOPUFFER_API_KEY, JETSTREAM_URL).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import shlex
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from docket import Docket
from pydantic import SecretStr
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

from engine.cache import cache_key, cache_key_pattern
from jetstream.consumer import JetstreamConsumer
from jetstream.replay import ReplayServer
from worker.api.app import create_app, server_config
from worker.demo import DemoCatalogue, DemoSession, generate_session, load_or_generate
from worker.identity.auth import Authenticator
from worker.processes.live_view import LiveView
from worker.processes.worker import build_worker
from worker.settings import Settings
from worker.tasks.playlist import PLAYLIST_TASKS
from worker.tasks.reconcile import RECONCILE_TASK
from worker.tasks.services import Services, installed, open_services
from worker.wiring import consumer_config

logger = logging.getLogger(__name__)

IDLE_CHECK_SECONDS = 0.25
IDLE_CONFIRMATIONS = 4  # idle this many checks in a row (a second) before stopping
SELF_CHECK_TIMEOUT = 10.0
API_READY_TIMEOUT = 10.0


@dataclass(frozen=True)
class RunOptions:
    """how long to run and how big a demo to make (`plyr-recs run --help`)."""

    for_seconds: float | None = None
    until_idle: bool = False
    tracks: int = 20_000
    artists: int = 300
    playlists: int = 12
    spacing_ms: float = 250.0
    seed: int = 0
    cache_dir: Path | None = None
    summary_path: Path | None = None


@dataclass
class ApiCheck:
    """the printed request, made by the run itself once the work is done."""

    url: str
    viewer_did: str
    status: int | None = None
    body: Any = None


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _api_port(settings: Settings) -> int:
    if settings.api_port and _port_free(settings.api_host, settings.api_port):
        return settings.api_port
    with socket.socket() as sock:
        sock.bind((settings.api_host, 0))
        port: int = sock.getsockname()[1]
        return port


def _load_demo(options: RunOptions, console: Console) -> DemoCatalogue:
    """the demo catalogue, with a progress bar while it is generated or read."""
    columns = (
        TextColumn("[bold]demo catalogue[/] {task.description}"),
        BarColumn(),
        TaskProgressColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("", total=1)

        def report(done: int, total: int, what: str) -> None:
            progress.update(task, completed=done, total=max(total, 1), description=what)

        return load_or_generate(
            options.cache_dir,
            tracks=options.tracks,
            artists=options.artists,
            regions=24,
            dim=512,
            seed=options.seed,
            progress=report,
        )


async def _feed(
    session: DemoSession, demo: DemoCatalogue, replay: ReplayServer, view: LiveView
) -> None:
    """send the session's frames at their pace, keeping plyr.fm's side (the demo
    catalog's playlist rows) in step as its own ingest would."""
    started = time.monotonic()
    first_us = session.steps[0].time_us if session.steps else 0
    for index, step in enumerate(session.steps):
        delay = (step.time_us - first_us) / 1e6 - (time.monotonic() - started)
        if delay > 0:
            await asyncio.sleep(delay)
        session.apply(index, demo.catalog)
        replay.append([step.frame])
        view.frame_sent(step)


class _Idleness:
    """nothing left to do: the session is sent, the consumer has read nothing new
    since the last look, and docket holds no scheduled or running task."""

    def __init__(
        self, docket: Docket, consumer: JetstreamConsumer, feed: asyncio.Task[None] | None
    ):
        self.docket = docket
        self.consumer = consumer
        self.feed = feed
        self.frames_seen = -1

    async def __call__(self) -> bool:
        if self.feed is not None and not self.feed.done():
            return False
        frames, self.frames_seen = self.frames_seen, self.consumer.stats.frames
        if frames != self.frames_seen:
            return False
        snapshot = await self.docket.snapshot()
        # the reconcile loop's next pass is always scheduled: that is not work left
        future = [e for e in snapshot.future if e.key != RECONCILE_TASK]
        running = [e for e in snapshot.running if e.key != RECONCILE_TASK]
        return not future and not running


async def _wait(
    stop: asyncio.Event,
    options: RunOptions,
    idle: Callable[[], Any],
) -> str:
    """until a signal, the time limit, or (with --until-idle) nothing left to do."""
    deadline = None if options.for_seconds is None else time.monotonic() + options.for_seconds
    quiet = 0
    while not stop.is_set():
        if deadline is not None and time.monotonic() >= deadline:
            return "time limit"
        if options.until_idle:
            quiet = quiet + 1 if await idle() else 0
            if quiet >= IDLE_CONFIRMATIONS:
                return "idle"
        try:
            await asyncio.wait_for(stop.wait(), IDLE_CHECK_SECONDS)
        except TimeoutError:
            continue
    return "stopped"


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: the run owns SIGINT/SIGTERM and
    stops the API last, after its own final request."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@asynccontextmanager
async def _serving(server: uvicorn.Server) -> AsyncIterator[None]:
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + API_READY_TIMEOUT
    while not server.started:
        if task.done():
            task.result()  # raises why it could not start
        if time.monotonic() > deadline:
            raise RuntimeError("the API did not start in time")
        await asyncio.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        await task


async def _self_check(check: ApiCheck, token: str) -> None:
    headers = {"X-Internal-Token": token, "X-Viewer-Did": check.viewer_did}
    async with httpx.AsyncClient(timeout=SELF_CHECK_TIMEOUT) as client:
        response = await client.get(check.url, headers=headers)
    check.status = response.status_code
    check.body = response.json() if response.content else None


async def _playlist_report(services: Services, session: DemoSession) -> list[dict[str, Any]]:
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


def _pick_playlist(session: DemoSession) -> Any:
    alive = [e for e in session.expected.values() if not e.deleted and e.track_uris]
    return max(alive, key=lambda e: len(set(e.track_uris))) if alive else None


async def run_embedded(settings: Settings, options: RunOptions, console: Console) -> int:
    """run everything until stopped; returns the process exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    demo_needed = settings.database_url is None or settings.turbopuffer_api_key is None
    demo = await asyncio.to_thread(_load_demo, options, console) if demo_needed else None
    session: DemoSession | None = None
    if settings.jetstream_url is None and demo is not None:
        session = generate_session(
            demo,
            playlists=options.playlists,
            seed=options.seed,
            # now, not the session's fixed epoch: a real Redis remembering an earlier
            # run would otherwise take every frame for a replay
            start_time_us=time.time_ns() // 1000,
            spacing_ms=options.spacing_ms,
        )
    names = {uri: e.name for uri, e in session.expected.items()} if session else {}

    token = (
        settings.internal_api_token.get_secret_value()
        if settings.internal_api_token is not None
        else secrets.token_urlsafe(24)
    )
    settings = settings.model_copy(update={"internal_api_token": SecretStr(token)})
    port = _api_port(settings)
    base_url = f"http://{settings.api_host}:{port}"

    view = LiveView(console, names)
    async with AsyncExitStack() as stack:
        stack.enter_context(view)
        services = await stack.enter_async_context(
            open_services(
                settings,
                catalog=demo.catalog
                if demo is not None and settings.database_url is None
                else None,
                **({"store": demo.store} if demo and settings.turbopuffer_api_key is None else {}),
            )
        )
        services.observer = view
        docket = await stack.enter_async_context(
            Docket(name=settings.docket_name, url=settings.docket_url)
        )
        hosts = None
        replay: ReplayServer | None = None
        if session is not None:
            replay = await stack.enter_async_context(ReplayServer())
            hosts = (replay.url,)
        consumer = JetstreamConsumer(
            config=consumer_config(settings, hosts=hosts),
            redis=services.redis,
            docket=docket,
            tasks=PLAYLIST_TASKS,
            observer=view,
        )
        worker = await stack.enter_async_context(
            # the reconcile loop too: the demo's playlists go through it like plyr.fm's
            build_worker(docket, concurrency=settings.worker_concurrency, reconcile=True)
        )
        stack.enter_context(installed(services))
        authenticator = Authenticator.from_settings(settings)
        stack.push_async_callback(authenticator.aclose)
        app = create_app(services, authenticator)
        server = _EmbeddedServer(server_config(app, host=settings.api_host, port=port))
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
        await stack.enter_async_context(_serving(server))

        view.info(f"API on {base_url}; jetstream from {', '.join(consumer.config.hosts)}")
        picked = _pick_playlist(session) if session else None
        if picked is not None:
            check = ApiCheck(
                f"{base_url}/playlists/{picked.playlist_id}/recommendations?limit=3",
                picked.owner_did,
            )
            view.info(
                f"ask the API for '{picked.name}' (404 until the session creates it):\n"
                + curl_line(check, token)
            )
        consumer_stop = asyncio.Event()
        running = [
            asyncio.create_task(consumer.run(consumer_stop), name="consumer"),
            asyncio.create_task(worker.run_forever(), name="worker"),
        ]
        feed = None
        if session is not None and replay is not None and demo is not None:
            feed = asyncio.create_task(_feed(session, demo, replay, view), name="feed")
            running.append(feed)
        view.status("running")
        try:
            reason = await _wait(stop, options, _Idleness(docket, consumer, feed))
        finally:
            view.status("stopping")
            consumer_stop.set()
            for task in running[1:]:
                task.cancel()
            results = await asyncio.gather(*running, return_exceptions=True)
        for task, result in zip(running, results, strict=True):
            if isinstance(result, Exception):
                logger.error("%s failed: %s", task.get_name(), result, exc_info=result)
        view.info(f"stopping ({reason})")

        if picked is not None:
            try:
                await _self_check(check, token)
            except httpx.HTTPError as error:
                logger.error("the API did not answer %s: %s", check.url, error)
        registry = app.state.api.metrics.registry
        hits = registry.get_sample_value("plyr_recs_api_cache_total", {"result": "hit"}) or 0
        misses = registry.get_sample_value("plyr_recs_api_cache_total", {"result": "miss"}) or 0
        stats = consumer.stats
        consumer_counts = {
            "frames": stats.frames,
            "playlist changes": stats.changes,
            "skipped": sum(stats.skipped.values()),
            "invalid": sum(stats.invalid.values()),
        }
        view.__exit__(None, None, None)
        view.summary(consumer_counts, int(hits), int(misses))
        if picked is not None:
            console.print(f"the request above, made at the end: {check.status}", highlight=False)
            console.print_json(json.dumps(check.body))
        if options.summary_path is not None:
            report = {
                "reason": reason,
                "frames_sent": view.tally.frames_sent,
                "consumer": consumer_counts,
                "consumer_invalid": dict(stats.invalid),
                "consumer_skipped": dict(stats.skipped),
                "outcomes": dict(view.tally.outcomes),
                "strategies": dict(view.tally.strategies),
                "compute_ms_p50": view.tally.percentile(0.5),
                "compute_ms_p99": view.tally.percentile(0.99),
                "forgotten": view.tally.forgotten,
                "dropped": view.tally.dropped,
                "api_check": None if picked is None else check.__dict__,
                "playlists": await _playlist_report(services, session) if session else [],
            }
            options.summary_path.write_text(json.dumps(report, indent=2))
        failed = any(isinstance(result, Exception) for result in results)
        return 1 if failed else 0
