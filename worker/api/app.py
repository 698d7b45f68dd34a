"""`plyr-recs api`: the HTTP API plyr.fm asks for a playlist's recommendations.

it exists so the answer is one Redis read away: the worker computes ahead of
time, this process serves what it left in the cache, and computes inline (with
the worker's own code) only on a miss. any number of these processes can run;
they hold no state but their connection pools.

    GET /playlists/{playlist_id}/recommendations?limit=3&offset=0   owner only
    GET /health     the process serves, and how each dependency is doing (checked <= 1/s)
    GET /health/live    liveness, touching nothing
    GET /health/ready   readiness: 503 when neither the cache nor the database answers
    GET /metrics    Prometheus text (on METRICS_PORT instead when that is set)
    GET /openapi.json   the OpenAPI document (worker.api.schema)

statuses: 401 no or bad credentials, 403 someone else's playlist, 404 unknown
playlist, 422 a malformed `limit`, `offset` or `playlist_id`. every fault degrades to
`{"tracks": [], "available": false}` instead of an error (see
`worker.api.answers`). with plyr.fm's database down, the owner and the newest
version come from the worker's state in Redis: the owner is served that
version's answer, someone else a 403, and a playlist nobody is known to own
`available: false` (no 404: without the database nobody can say it is unknown).
503 comes only from the server, past `MAX_CONCURRENT_CONNECTIONS` requests or
connections all busy; 431 for headers past their bounds (`worker.api.http_guard`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Final

import uvicorn
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from uvicorn.loops.auto import auto_loop_factory

from engine.ports import CatalogError
from jetstream.keys import JetstreamKeys
from worker.api.answers import CACHE_FAULTS, Answer, AnswerLimits, Answers
from worker.api.client_address import ClientAddresses
from worker.api.health import HealthChecks
from worker.api.http_guard import MAX_CONNECTIONS, GuardedHttpProtocol
from worker.api.metrics import CONTENT_TYPE, ApiMetrics, RequestMetricsMiddleware
from worker.api.reconcile_metrics import ReconcileMetrics
from worker.api.schema import (
    HEALTH_RESPONSES,
    LIVE_RESPONSES,
    METRICS_RESPONSES,
    READY_RESPONSES,
    RECOMMENDATIONS_OPERATION,
    RECOMMENDATIONS_RESPONSES,
    openapi_document,
)
from worker.api.withdrawn_view import WithdrawnView
from worker.identity.auth import Authenticator, AuthError
from worker.identity.pds import PdsRecords
from worker.ops.heap import freeze_startup_heap
from worker.ops.probes import CachedProbe, Readiness, catalog_probe, redis_probe, store_probe
from worker.ops.server import OpsServer
from worker.ops.traced import PDS_METHODS, traced
from worker.ops.tracing import tracing_enabled
from worker.recs.services import Services
from worker.settings import Settings
from worker.store.activity import ActivityLog, active_days_seconds
from worker.wiring import frame_limits

logger = logging.getLogger(__name__)

DEFAULT_LIMIT: Final = 3
MAX_LIMIT: Final = 10
# plyr.fm's playlist ids are UUID strings. the bound and the alphabet keep junk
# out of SQL parameters, Redis keys (no ':' or glob characters) and log lines.
PLAYLIST_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
LIMIT_RE: Final = re.compile(r"[0-9]{1,2}")  # no sign, no space, no float: an int in 1..10
# "more": the next tracks of the same cached answer (engine.cache keeps 30)
DEFAULT_OFFSET: Final = 0
MAX_OFFSET: Final = 20
MAX_ECHOED_INPUT: Final = 100  # characters of a rejected value quoted back in a 422
SOURCE_HEADER: Final = "x-recommendations-source"  # where an answer came from (debugging)
HEALTH_REDIS_TIMEOUT: Final = 0.25  # seconds: /health must stay cheap with Redis hung
HEALTH_CATALOG_TIMEOUT: Final = 1.0
HEALTH_PROBE_ID: Final = "00000000-0000-0000-0000-000000000000"  # a primary-key miss
# requests in progress at once; uvicorn answers 503 past it. connections are
# bounded (and idle ones shed) by worker.api.http_guard, below this bound.
MAX_CONCURRENT_CONNECTIONS: Final = MAX_CONNECTIONS + 1


@dataclass(frozen=True, slots=True)
class ApiState:
    """what one app serves from, kept in `app.state.api` (no module-level state)."""

    services: Services
    authenticator: Authenticator
    answers: Answers
    metrics: ApiMetrics
    closing: AsyncExitStack  # closed with the app
    health: HealthChecks
    clients: ClientAddresses  # who the client is, behind a trusted proxy
    store_check: CachedProbe | None  # None: no vector store configured
    public_metrics: bool  # /metrics on the API's own port (off when METRICS_PORT serves it)


def create_app(
    services: Services,
    authenticator: Authenticator,
    *,
    pds: PdsRecords | None = None,
    limits: AnswerLimits | None = None,
    closing: AsyncExitStack | None = None,
    screen_withdrawals: bool = True,
    public_metrics: bool = True,
) -> FastAPI:
    """the API over `services` and `authenticator`.

    every answer is screened against withdrawn tracks (`worker.api.withdrawn_view`);
    `screen_withdrawals=False` is for a benchmark's baseline only.

    the app closes on shutdown what it creates (the PDS client, or the one
    handed in, and the inline computes) and whatever `closing` holds; the
    rest stays the caller's.
    """
    metrics = ApiMetrics(auth_counts=authenticator.counts, cache_counts=services.cache.counts)
    answers = Answers(
        cache=services.cache,
        recommender=services.recommender,
        pds=pds or pds_records(services.settings),
        metrics=metrics,
        limits=limits,
        withdrawn=WithdrawnView(
            services.redis,
            stale_seconds=services.settings.withdrawal_stale_seconds,
            loss_key=JetstreamKeys(services.settings.list_collection).epoch,
        )
        if screen_withdrawals
        else None,
        activity=ActivityLog(
            services.redis,
            ttl_seconds=active_days_seconds(services.settings.refresh_active_days),
        ),
    )

    answers.speculation.per_answer = services.settings.speculative_answers
    owned = closing or AsyncExitStack()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await answers.aclose()
        await health_checks.aclose()
        if store_check is not None:
            await store_check.aclose()
        await owned.aclose()
        logger.info("API shut down: computes stopped, connections closed")

    app = FastAPI(
        title="plyr-recs",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # FastAPI's built-in OpenTelemetry hooks look up the global providers on
        # every request (~8% of a cache hit's CPU): on only when this process
        # exports traces (OTEL_EXPORTER_OTLP_ENDPOINT, worker.ops.tracing); the
        # metrics are Prometheus's.
        telemetry={"tracing": tracing_enabled(), "metrics": False, "logs": False},
        # no redirect for a trailing slash: Starlette builds its Location from the
        # request's Host header (`Host: evil.example` -> `http://evil.example/...`).
        # `/health/` is a 404 like any other unknown path.
        redirect_slashes=False,
    )
    health_checks = HealthChecks(
        redis_alive=lambda: _redis_alive(services),
        catalog_alive=lambda: _catalog_alive(services),
    )
    clients = ClientAddresses(
        header=services.settings.api_client_ip_header,
        trusted_proxies=services.settings.api_trusted_proxies,
    )
    store_check = (
        None
        if services.store is None
        else CachedProbe(
            store_probe(services.store),
            max_age_seconds=services.settings.health_store_check_seconds,
        )
    )
    app.state.api = ApiState(
        services,
        authenticator,
        answers,
        metrics,
        owned,
        health_checks,
        clients,
        store_check,
        public_metrics,
    )
    app.state.reconcile_metrics = ReconcileMetrics(metrics.registry, services.redis)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    app.include_router(router)
    # added after the router, so the hit path is matched first.
    app.add_api_route("/openapi.json", _openapi, include_in_schema=False)
    return app


router = APIRouter()


def _state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


async def viewer(request: Request) -> str:
    """the caller's DID; every way in is checked on every request."""
    try:
        state = _state(request)
        peer = request.client.host if request.client is not None else None
        client = state.clients.client_of(peer, request.headers)
        return await state.authenticator.authenticate(request.headers, client)
    except AuthError as error:
        raise HTTPException(401, error.reason, {"WWW-Authenticate": "Bearer"}) from error


@router.get(
    "/playlists/{playlist_id}/recommendations",
    responses=RECOMMENDATIONS_RESPONSES,
    openapi_extra=RECOMMENDATIONS_OPERATION,
)
async def recommendations(request: Request) -> Response:
    """the owner's recommendations for a playlist: `{"tracks": [...], "available": bool}`.

    parameters are read and validated here rather than declared to FastAPI: its
    parameter machinery cost ~100 µs a request, a third of a cache hit's CPU
    (`python -m bench api`). the order is kept: credentials (401) before
    parameters (422), so nothing about a request is judged before its caller.
    """
    state = _state(request)
    viewer_did = await viewer(request)
    playlist_id = _playlist_id(request.path_params.get("playlist_id", ""))
    limit = _limit(_once(request, "limit"))
    offset = _offset(_once(request, "offset"))
    try:
        playlist = await state.services.catalog.get_playlist(playlist_id)
    except CatalogError as error:
        answer = await _without_catalog(state, playlist_id, viewer_did, error)
    else:
        if playlist is None:
            raise HTTPException(404, "unknown playlist")
        if playlist.owner_did != viewer_did:
            raise HTTPException(403, "not the playlist's owner")
        answer = await state.answers.answer(playlist)
        state.answers.served(playlist, answer, limit, offset)
        # plyr.fm's database answers: ranks past the first page can be hydrated
        answer = await state.answers.reaching(answer, limit, offset)
    return Response(
        answer.body(limit, offset),
        media_type="application/json",
        headers={SOURCE_HEADER: answer.source, "cache-control": "no-store"},
    )


def _playlist_id(raw: str) -> str:
    if PLAYLIST_ID_RE.fullmatch(raw) is None:
        raise _invalid("path", "playlist_id", "a playlist id (1-64 of A-Z a-z 0-9 _ -)", raw)
    return raw


def _once(request: Request, name: str) -> str | None:
    """a query parameter given at most once: of two, which one was meant? refused, not
    guessed (FastAPI would take the last)."""
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise _invalid("query", name, "given once", "&".join(values))
    return values[0] if values else None


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if LIMIT_RE.fullmatch(raw) is None or not 1 <= int(raw) <= MAX_LIMIT:
        raise _invalid("query", "limit", f"an integer from 1 to {MAX_LIMIT}", raw)
    return int(raw)


def _offset(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_OFFSET
    if LIMIT_RE.fullmatch(raw) is None or not 0 <= int(raw) <= MAX_OFFSET:
        raise _invalid("query", "offset", f"an integer from 0 to {MAX_OFFSET}", raw)
    return int(raw)


def _invalid(where: str, name: str, expected: str, raw: str) -> RequestValidationError:
    """a 422 in FastAPI's own shape (its handler renders it)."""
    error = {
        "type": "value_error",
        "loc": (where, name),
        "msg": f"{name} must be {expected}",
        "input": raw[:MAX_ECHOED_INPUT],
    }
    return RequestValidationError([error])


async def _without_catalog(
    state: ApiState, playlist_id: str, viewer_did: str, error: CatalogError
) -> Answer:
    """plyr.fm's database is down: answer from what the cache knows, never an error.

    the worker's state names the playlist's owner (a playlist never changes
    hands) and its newest computed version: the owner gets that answer, maybe
    one edit behind; anyone else a 403; with no state, nobody can be told
    anything but `available: false`.
    """
    state.answers.catalog_failed(error)
    known = await state.answers.last_known(playlist_id)
    if known.owner_did is not None and known.owner_did != viewer_did:
        raise HTTPException(403, "not the playlist's owner")
    state.metrics.answers.labels(known.answer.source).inc()
    return known.answer


@router.get("/health", response_model=None, responses=HEALTH_RESPONSES)
async def health(request: Request) -> dict[str, object]:
    """200 while the process serves; each dependency's state is reported, and a
    down one sets `degraded` (the API still answers, degraded, without it). the
    checks are shared and reused for a second (`worker.api.health`)."""
    return await _health_report(_state(request))


@router.get("/health/live", responses=LIVE_RESPONSES)
async def live() -> dict[str, str]:
    """200 while the process and its event loop answer; touches nothing."""
    return {"status": "ok"}


@router.get("/health/ready", response_model=None, responses=READY_RESPONSES)
async def ready(request: Request) -> JSONResponse:
    """the /health report; 503 when neither the cache nor plyr.fm's database answers.

    a dead vector store shows in the report (`turbopuffer: down`, `degraded`) and in
    `plyr_recs_dependency_up`, but is no 503: the cache still serves every precomputed
    answer, and taking every API out of the load balancer would lose those too."""
    report = await _health_report(_state(request))
    serving = report["redis"] == "ok" or report["catalog"] == "ok"
    return JSONResponse(report, status_code=200 if serving else 503)


# HEAD answers as GET does, without the body (a load balancer's probe; was a 405).
# registered apart and out of the schema: one operation per method and path.
for _path, _endpoint in (("/health", health), ("/health/live", live), ("/health/ready", ready)):
    router.add_api_route(_path, _endpoint, methods=["HEAD"], include_in_schema=False)


async def _health_report(state: ApiState) -> dict[str, object]:
    services = state.services
    checked, store_ok = await asyncio.gather(state.health.current(), _store_alive(state))
    redis_ok, catalog_ok = checked.redis_ok, checked.catalog_ok
    degraded = not (redis_ok and catalog_ok and store_ok)
    return {
        "status": "degraded" if degraded else "ok",
        "degraded": degraded,
        "redis": "ok" if redis_ok else "down",
        "catalog": "ok" if catalog_ok else "down",
        "store": "disabled" if services.store is None else type(services.store).__name__,
        "turbopuffer": "disabled" if state.store_check is None else "ok" if store_ok else "down",
        "computes_in_flight": state.answers.computes_in_flight,
    }


async def _store_alive(state: ApiState) -> bool:
    """the vector store's cached probe (HEALTH_STORE_CHECK_SECONDS); False when none."""
    return False if state.store_check is None else await state.store_check.alive()


async def refresh_dependency_gauge(state: ApiState) -> None:
    """`plyr_recs_dependency_up` from the same shared checks as /health."""
    report = await _health_report(state)
    for name in ("redis", "catalog", "turbopuffer"):
        state.metrics.dependency_up.labels(name).set(1.0 if report[name] == "ok" else 0.0)


@router.get("/metrics", response_class=PlainTextResponse, responses=METRICS_RESPONSES)
async def prometheus_metrics(request: Request) -> Response:
    state = _state(request)
    if not state.public_metrics:  # served on METRICS_PORT, off the public port
        raise HTTPException(404, "Not Found")
    return Response(await render_metrics(request.app), media_type=CONTENT_TYPE)


async def render_metrics(app: FastAPI) -> bytes:
    """the API's metrics, their scrape-time parts read first."""
    state: ApiState = app.state.api
    await app.state.reconcile_metrics.refresh()
    await refresh_dependency_gauge(state)
    return state.metrics.render()


async def _openapi(request: Request) -> JSONResponse:
    # `openapi_url=None` above keeps FastAPI's own route (and docs pages) away;
    # this one is added after the API's routes.
    return JSONResponse(openapi_document(request.app))


def pds_records(settings: Settings, *, allow_private: bool = False) -> PdsRecords:
    """the PDS client, validating records with the consumer's own limits.

    `allow_private` (plain http, loopback addresses) only where every PDS URL is
    the service's own: the embedded demo's catalogue, and tests."""
    limits = frame_limits(settings)
    records = PdsRecords(
        limits=limits.record,
        list_collection=limits.list_collection,
        allow_private=allow_private or settings.pds_allow_private,
    )
    if tracing_enabled():
        records = traced(records, system="pds", methods=PDS_METHODS)
    return records


async def _redis_alive(services: Services) -> bool:
    try:
        async with asyncio.timeout(HEALTH_REDIS_TIMEOUT):
            return bool(await services.redis.ping())
    except CACHE_FAULTS:
        return False


async def _catalog_alive(services: Services) -> bool:
    try:
        async with asyncio.timeout(HEALTH_CATALOG_TIMEOUT):
            await services.catalog.get_playlist(HEALTH_PROBE_ID)
    except (CatalogError, TimeoutError):
        return False
    return True


def server_config(app: FastAPI, *, host: str, port: int) -> uvicorn.Config:
    """how uvicorn runs the API (`serve` and `python -m bench api` share it)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        access_log=False,  # /metrics counts requests; a line each is noise at this rate
        # no logging setup of uvicorn's own: its records go to the process's one
        # handler, in LOG_FORMAT (worker.processes.logs)
        log_config=None,
        limit_concurrency=MAX_CONCURRENT_CONNECTIONS,
        # X-Forwarded-For from loopback was believed: a forged one made every request a
        # new client of the identity budget. the client is `worker.api.client_address`'s.
        proxy_headers=False,
        http=GuardedHttpProtocol,  # header bounds, a header timeout, idle connections shed
    )


def run(settings: Settings) -> None:
    """`plyr-recs api`: serve until SIGINT/SIGTERM, on the event loop uvicorn would pick.

    that is uvloop when it is installed (with httptools: uvicorn[standard]), else
    asyncio's own; in `python -m bench api` the pair nearly doubled the
    requests one core serves. the services are opened inside that loop, so
    their connections belong to it.
    """
    with asyncio.Runner(loop_factory=auto_loop_factory()) as runner:
        runner.run(serve(settings))


async def serve(settings: Settings) -> None:
    """run the API under uvicorn until SIGINT/SIGTERM, on the configured services."""
    from worker.recs.services import open_services

    async with AsyncExitStack() as stack:
        services = await stack.enter_async_context(open_services(settings, foreground=True))
        authenticator = Authenticator.from_settings(settings)
        stack.push_async_callback(authenticator.aclose)
        # closed by the app's shutdown: after SIGTERM uvicorn re-raises the signal
        # once the app has shut down, and the process ends before any code here
        # would run. the stack stays here too, for a server that never started.
        app = create_app(
            services,
            authenticator,
            closing=stack.pop_all(),
            public_metrics=not settings.metrics_port,
        )
        stack.push_async_callback(app.state.api.closing.aclose)
        if settings.metrics_port:
            await app.state.api.closing.enter_async_context(metrics_server(app, settings))
        config = server_config(app, host=settings.api_host, port=settings.api_port)
        freeze_startup_heap()
        await uvicorn.Server(config).serve()


def metrics_server(app: FastAPI, settings: Settings) -> OpsServer:
    """the API's /metrics on METRICS_PORT, off the public port; its /health/ready there
    asks every dependency (the public one asks only whether anything can be served)."""
    state: ApiState = app.state.api
    probes = {
        "redis": CachedProbe(redis_probe(state.services.redis)),
        "catalog": CachedProbe(catalog_probe(state.services.catalog)),
    }
    if state.store_check is not None:
        probes["turbopuffer"] = state.store_check

    async def render() -> bytes:
        return await render_metrics(app)

    return OpsServer(
        process="api",
        host=settings.metrics_host,
        port=settings.metrics_port,
        render=render,
        readiness=Readiness(probes),
    )
