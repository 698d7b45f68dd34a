"""the API's OpenAPI document, served at `/openapi.json`.

the recommendations endpoint reads its parameters by hand (FastAPI's parameter
machinery cost a third of a cache hit, see `worker.api.app.recommendations`), so
FastAPI cannot infer them. they are declared here instead, beside the bodies the
endpoints answer with, and attached to the routes as documentation only: nothing
in this module runs on a request, and the document is built once, on its first
request. the schemathesis suite (tests/test_hostile_api.py) holds the endpoints
to it, so a change of behaviour without a change here fails a test.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

from worker.identity.auth import GET_PLAYLIST_RECOMMENDATIONS

OPENAPI_VERSION: Final = "3.1.0"


class Because(BaseModel):
    """the playlist track that explains a recommendation: the one it is nearest to
    (playlists of 1-5 tracks), or the one that best stands for the mood it fills."""

    id: int
    title: str


class RecommendedTrack(BaseModel):
    """a recommended track (DESIGN.md, "Output"), and, when known, why."""

    id: int
    title: str
    artist_handle: str
    artist_display_name: str
    image_url: str | None
    because: Because | None = Field(
        default=None, description="absent when no surfaceable playlist track explains it"
    )


class Recommendations(BaseModel):
    """up to `limit` tracks, best first; `available: false` hides the section."""

    tracks: list[RecommendedTrack] = Field(max_length=10)
    available: bool


class Detail(BaseModel):
    """a refusal: a short, fixed reason (never an echo of the credentials)."""

    detail: str


class ValidationProblem(BaseModel):
    type: str
    loc: list[str | int]
    msg: str
    input: Any = None


class ValidationErrors(BaseModel):
    """FastAPI's 422 shape: which parameter, and why."""

    detail: list[ValidationProblem]


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    degraded: bool
    redis: Literal["ok", "down"]
    catalog: Literal["ok", "down"]
    store: str
    computes_in_flight: int = Field(ge=0)


def _detail(description: str, **headers: str) -> dict[str, Any]:
    response: dict[str, Any] = {"model": Detail, "description": description}
    if headers:
        response["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in headers.items()
        }
    return response


RECOMMENDATIONS_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {"model": Recommendations, "description": "the owner's recommendations"},
    401: _detail(
        "no credentials, or credentials that prove nobody",
        **{"WWW-Authenticate": "Bearer"},
    ),
    403: _detail("the viewer does not own this playlist"),
    404: _detail("no such playlist"),
    422: {"model": ValidationErrors, "description": "a malformed playlist_id, limit or offset"},
    503: {"description": "the server is past its connection limit (uvicorn's answer)"},
}

# the parameters `worker.api.app` reads by hand. `Authorization` is a security scheme,
# not a parameter (OpenAPI ignores a header parameter of that name).
RECOMMENDATIONS_OPERATION: Final[dict[str, Any]] = {
    "parameters": [
        {
            "name": "playlist_id",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
            "description": "plyr.fm's id of the playlist",
        },
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3},
            "description": "how many tracks, best first",
        },
        {
            "name": "offset",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 0, "maximum": 20, "default": 0},
            "description": "skip this many of the best tracks: 'more' (limit=3&offset=3 "
            "are the next three); the answer holds at most 30 tracks",
        },
        {
            "name": "X-Viewer-Did",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "maxLength": 261},
            "description": "with X-Internal-Token: the user plyr.fm's backend vouches for",
        },
    ],
    "security": [{"serviceAuth": []}, {"internalToken": []}],
}

SECURITY_SCHEMES: Final[dict[str, Any]] = {
    "serviceAuth": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "an ATProto service-auth JWT signed by the viewer's DID key, "
        f"aud = this service's DID, lxm = {GET_PLAYLIST_RECOMMENDATIONS}",
    },
    "internalToken": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Internal-Token",
        "description": "plyr.fm's backend (with X-Viewer-Did)",
    },
}

HEALTH_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {"model": Health, "description": "the process serves; each dependency's state"},
}

LIVE_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {"description": "the process and its event loop answer (nothing else is checked)"},
}

READY_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {"model": Health, "description": "the cache or plyr.fm's database answers"},
    503: {"model": Health, "description": "neither answers: only `available: false` is possible"},
}

METRICS_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "description": "Prometheus text exposition",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    },
}


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """the document, built on first use and kept on the app (FastAPI's own cache slot)."""
    if app.openapi_schema is None:
        document = get_openapi(
            title=app.title,
            version=app.version,
            openapi_version=OPENAPI_VERSION,
            description="playlist recommendations for plyr.fm",
            routes=app.routes,
        )
        document.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
        app.openapi_schema = document
    return app.openapi_schema
