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
from docket import Docket, Worker
from fastapi import FastAPI
from pydantic import SecretStr
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

from jetstream.consumer import JetstreamConsumer
from jetstream.replay import ReplayServer
from worker.api.app import create_app, pds_records, server_config
from worker.demo import DemoCatalogue, DemoSession, generate_session, load_or_generate
from worker.identity.auth import Authenticator
from worker.processes.editor import (
    EditorSite,
    EditorView,
    editor_view,
    serve_editor,
    why_not_served,
)
from worker.processes.live_view import LiveView
from worker.processes.run_report import (
    ApiCheck,
    consumer_counts,
    curl_line,
    pick_playlist,
    self_check,
    summary,
)
from worker.processes.worker import PERPETUAL_KEYS, configured_worker
from worker.recs.services import Services, installed, open_services
from worker.settings import Settings
from worker.tasks.markers import WorkerMarkers
from worker.tasks.playlist import PLAYLIST_TASKS
from worker.tasks.withdrawals import withdrawal_handler
from worker.wiring import consumer_config, open_docket

logger = logging.getLogger(__name__)

IDLE_CHECK_SECONDS = 0.25
IDLE_CONFIRMATIONS = 4  # idle this many checks in a row (a second) before stopping
API_READY_TIMEOUT = 10.0


DEMO_REGIONS = 24  # sound regions of the demo catalogue (`--tracks` needs 10 each)


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
    if settings.api_port:  # said, not silent: a script may expect the asked-for port
        logger.warning(
            "API_PORT=%d is in use on %s: the API takes port %d instead (set API_PORT to "
            "choose another, or 0 for any free port)",
            settings.api_port,
            settings.api_host,
            port,
        )
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
            regions=DEMO_REGIONS,
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
        # the perpetual loops' next runs are always scheduled: that is not work left
        future = [e for e in snapshot.future if e.key not in PERPETUAL_KEYS]
        running = [e for e in snapshot.running if e.key not in PERPETUAL_KEYS]
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


def _demo_session(settings: Settings, options: RunOptions, demo: DemoCatalogue | None) -> Any:
    """the session of edits to replay, unless a real Jetstream (or catalogue) is used."""
    if settings.jetstream_url is not None or demo is None:
        return None
    return generate_session(
        demo,
        playlists=options.playlists,
        seed=options.seed,
        # now, not the session's fixed epoch: a real Redis remembering an earlier
        # run would otherwise take every frame for a replay
        start_time_us=time.time_ns() // 1000,
        spacing_ms=options.spacing_ms,
    )


def _with_token(settings: Settings) -> tuple[Settings, str]:
    """the settings with an internal token the printed request can use (a fresh one
    unless INTERNAL_API_TOKEN is set)."""
    token = (
        settings.internal_api_token.get_secret_value()
        if settings.internal_api_token is not None
        else secrets.token_urlsafe(24)
    )
    return settings.model_copy(update={"internal_api_token": SecretStr(token)}), token


@dataclass
class _Parts:
    """the running service's parts, as `_start` opened them on the run's exit stack."""

    services: Services
    docket: Docket
    replay: ReplayServer | None
    consumer: JetstreamConsumer
    worker: Worker
    app: FastAPI
    editor: EditorSite | None = None  # the playlist editor page, when it is served


async def _start(
    stack: AsyncExitStack,
    settings: Settings,
    demo: DemoCatalogue | None,
    session: DemoSession | None,
    view: LiveView,
    port: int,
) -> _Parts:
    """open every part (each embedded one unless its URL is set) and serve the API."""
    catalog = demo.catalog if demo is not None and settings.database_url is None else None
    if demo is not None and settings.turbopuffer_api_key is None:
        opened = open_services(settings, catalog=catalog, store=demo.store)
    else:
        opened = open_services(settings, catalog=catalog)
    services = await stack.enter_async_context(opened)
    services.observer = view
    docket = await stack.enter_async_context(open_docket(settings))
    replay = await stack.enter_async_context(ReplayServer()) if session is not None else None
    consumer = JetstreamConsumer(
        config=consumer_config(settings, hosts=None if replay is None else (replay.url,)),
        redis=services.redis,
        docket=docket,
        tasks=PLAYLIST_TASKS,
        observer=view,
        markers=WorkerMarkers(withdrawal_handler(docket)),
    )
    worker = await stack.enter_async_context(
        # the perpetual loops too: the demo's playlists go through the reconcile loop
        # like plyr.fm's, and its withdrawals through the check round
        configured_worker(docket, settings)
    )
    stack.enter_context(installed(services))
    authenticator = Authenticator.from_settings(settings)
    stack.push_async_callback(authenticator.aclose)
    # the demo catalogue's PDS URLs are this run's own loopback servers (the editor's
    # demo PDS), never one from the network: only then may the client reach loopback
    own_pds = demo is not None and settings.database_url is None
    app = create_app(services, authenticator, pds=pds_records(settings, allow_private=own_pds))
    editor = None
    if isinstance(view, EditorView) and demo and session and replay and settings.internal_api_token:
        token = settings.internal_api_token.get_secret_value()
        editor = serve_editor(
            app,
            view=view,
            demo=demo,
            session=session,
            replay=replay,
            services=services,
            settings=settings,
            port=port,
            token=token,
        )
    server = _EmbeddedServer(server_config(app, host=settings.api_host, port=port))
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    await stack.enter_async_context(_serving(server))
    if editor is not None:
        stack.push_async_callback(editor.aclose)  # ends its event streams: the server waits
    return _Parts(services, docket, replay, consumer, worker, app, editor)


async def _run_until_done(
    parts: _Parts,
    stop: asyncio.Event,
    options: RunOptions,
    feeding: tuple[DemoSession, DemoCatalogue] | None,
    view: LiveView,
) -> tuple[str, bool]:
    """run the consumer, the worker and the session's feed until a reason to stop;
    the reason, and whether any of them failed."""
    consumer_stop = asyncio.Event()
    running = [
        asyncio.create_task(parts.consumer.run(consumer_stop), name="consumer"),
        asyncio.create_task(parts.worker.run_forever(), name="worker"),
    ]
    feed = None
    if feeding is not None and parts.replay is not None:
        session, demo = feeding
        feed = asyncio.create_task(_feed(session, demo, parts.replay, view), name="feed")
        running.append(feed)
    view.status("running")
    try:
        reason = await _wait(stop, options, _Idleness(parts.docket, parts.consumer, feed))
    finally:
        view.status("stopping")
        consumer_stop.set()
        for task in running[1:]:
            task.cancel()
        results = await asyncio.gather(*running, return_exceptions=True)
    for task, result in zip(running, results, strict=True):
        if isinstance(result, Exception):
            logger.error("%s failed: %s", task.get_name(), result, exc_info=result)
    return reason, any(isinstance(result, Exception) for result in results)


async def run_embedded(settings: Settings, options: RunOptions, console: Console) -> int:
    """run everything until stopped; returns the process exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    demo_needed = settings.database_url is None or settings.turbopuffer_api_key is None
    demo = await asyncio.to_thread(_load_demo, options, console) if demo_needed else None
    session: DemoSession | None = _demo_session(settings, options, demo)
    names = {uri: e.name for uri, e in session.expected.items()} if session else {}
    settings, token = _with_token(settings)
    port = _api_port(settings)
    base_url = f"http://{settings.api_host}:{port}"

    no_page = why_not_served(settings, demo, session)
    view: LiveView = LiveView(console, names)
    if session is not None and no_page is None:
        view = editor_view(console, names, session, token)
    async with AsyncExitStack() as stack:
        stack.enter_context(view)
        parts = await _start(stack, settings, demo, session, view, port)
        hosts = ", ".join(parts.consumer.config.hosts)
        view.info(f"API on {base_url}; jetstream from {hosts}")
        if parts.editor is not None:
            view.info(f"the playlist editor: {base_url}/")
        elif no_page is not None:
            view.info(no_page)
        picked = pick_playlist(session) if session else None
        check = None
        if picked is not None:
            check = ApiCheck(
                f"{base_url}/playlists/{picked.playlist_id}/recommendations?limit=3",
                picked.owner_did,
            )
            view.info(
                f"ask the API for '{picked.name}' (404 until the session creates it):\n"
                + curl_line(check, token)
            )
        feeding = (session, demo) if session is not None and demo is not None else None
        reason, failed = await _run_until_done(parts, stop, options, feeding, view)
        view.info(f"stopping ({reason})")

        if check is not None:
            try:
                await self_check(check, token)
            except httpx.HTTPError as error:
                logger.error("the API did not answer %s: %s", check.url, error)
        registry = parts.app.state.api.metrics.registry
        hits = registry.get_sample_value("plyr_recs_api_cache_total", {"result": "hit"}) or 0
        misses = registry.get_sample_value("plyr_recs_api_cache_total", {"result": "miss"}) or 0
        view.__exit__(None, None, None)
        view.summary(consumer_counts(parts.consumer), int(hits), int(misses))
        if check is not None:
            console.print(f"the request above, made at the end: {check.status}", highlight=False)
            console.print_json(json.dumps(check.body))
        if options.summary_path is not None:
            report = await summary(
                reason=reason,
                view=view,
                consumer=parts.consumer,
                check=check,
                services=parts.services,
                session=session,
            )
            options.summary_path.write_text(json.dumps(report, indent=2))
        return 1 if failed else 0
