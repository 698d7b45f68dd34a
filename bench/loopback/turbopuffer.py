"""a local HTTP server that speaks enough of turbopuffer's v2 API for the real client.

the real `turbopuffer.AsyncTurbopuffer`, pointed at `base_url`, can write
(`POST /v2/namespaces/{ns}`: upsert_rows, upsert_columns, deletes,
distance_metric), query (`POST /v2/namespaces/{ns}/query`), multi-query (the same
path with `?stainless_overload=multiQuery` and a body of `{"queries": [...]}`) and
delete a namespace. search is exact (numpy), so tests can compare against a brute
force. integer ids only, and ordering by id only: that is all plyr-recs needs.

fault hooks answer the next requests with an error status, a stall or a
chosen body; every request is recorded (faulted ones too), so tests can
count round trips and read the bodies the client sent.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import turbopuffer
from aiohttp import web

from bench.loopback.http import LoopbackHttpServer

# the documented limits the real service enforces (turbopuffer.com/docs/limits, /docs/query).
MAX_TOP_K = 1200
MAX_SUBQUERIES = 16
DISTANCE_METRICS = ("cosine_distance", "euclidean_squared")

BILLING = {"billable_logical_bytes_queried": 0, "billable_logical_bytes_returned": 0}
PERFORMANCE = {
    **{"approx_namespace_size": 0, "cache_hit_ratio": 1.0, "cache_temperature": "hot"},
    **{"exhaustive_search_count": 0, "query_execution_ms": 0, "server_total_ms": 0},
}

Array = npt.NDArray[np.float32]
Predicate = Callable[[int, Mapping[str, Any]], bool]


class BadRequest(Exception):
    """the request is not one turbopuffer would accept (answered with 400)."""


class NamespaceNotFound(Exception):
    """the namespace was never written (answered with 404)."""


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query_string: str
    body: Any

    @property
    def kind(self) -> str:
        """'query', 'multi_query', 'write' or 'delete': what the client asked for."""
        if self.method == "DELETE":
            return "delete"
        if not self.path.endswith("/query"):
            return "write"
        return "multi_query" if "stainless_overload=multiQuery" in self.query_string else "query"


@dataclass(frozen=True)
class Fault:
    status: int | None = None  # answer with this error status
    delay: float = 0.0  # stall this long first
    body: bytes | None = None  # answer 200 with exactly this body
    retry_after_ms: int | None = None


@dataclass
class Namespace:
    distance_metric: str
    documents: dict[int, dict[str, Any]] = field(default_factory=dict)
    dimensions: int | None = None

    def upsert(self, doc_id: object, values: Mapping[str, Any]) -> None:
        if not isinstance(doc_id, int) or isinstance(doc_id, bool):
            raise BadRequest(f"ids must be integers here, got {doc_id!r}")
        document = dict(values)
        if document.get("vector") is not None:
            vector = document["vector"] = _parse_vector(document["vector"])
            if self.dimensions is not None and len(vector) != self.dimensions:
                raise BadRequest(f"vector of {len(vector)} dims, namespace has {self.dimensions}")
            self.dimensions = len(vector)
        self.documents[doc_id] = document


class TurbopufferServer(LoopbackHttpServer):
    """turbopuffer on 127.0.0.1 (port 0 by default), in the caller's event loop or a thread."""

    client_max_size = 64 * 1024 * 1024
    thread_name = "turbopuffer-server"

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.namespaces: dict[str, Namespace] = {}
        self.requests: list[RecordedRequest] = []
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()  # the test's thread and the server's loop share state

    @property
    def base_url(self) -> str:
        return self.url

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v2/namespaces/{namespace}/query", self._handle)
        app.router.add_post("/v2/namespaces/{namespace}", self._handle)
        app.router.add_delete("/v2/namespaces/{namespace}", self._handle)

    # --- test hooks --------------------------------------------------------------

    def seed(
        self,
        namespace: str,
        vectors_by_id: Mapping[int, npt.ArrayLike | None],
        *,
        distance_metric: str = "cosine_distance",
    ) -> None:
        """write documents directly, skipping HTTP (fast set-up; `None` = no vector)."""
        with self._lock:
            target = self.namespaces.setdefault(namespace, Namespace(distance_metric))
            for doc_id, vector in vectors_by_id.items():
                target.upsert(doc_id, {"vector": vector})

    def seed_raw(self, namespace: str, doc_id: int, vector: object) -> None:
        """store a vector exactly as given, unvalidated: how tests plant corrupt data."""
        with self._lock:
            target = self.namespaces.setdefault(namespace, Namespace("cosine_distance"))
            target.documents[doc_id] = {"vector": vector}

    def fail_next(self, status: int, *, times: int = 1, retry_after_ms: int | None = 1) -> None:
        """answer the next `times` requests with `status` (a short retry-after: quick tests)."""
        with self._lock:
            self._faults.extend([Fault(status=status, retry_after_ms=retry_after_ms)] * times)

    def delay_next(self, seconds: float, *, times: int = 1) -> None:
        """stall the next `times` requests for `seconds`, then answer them normally."""
        with self._lock:
            self._faults.extend([Fault(delay=seconds)] * times)

    def respond_next(self, body: bytes, *, times: int = 1) -> None:
        """answer the next `times` requests 200 with exactly `body` (bad JSON, wrong shapes)."""
        with self._lock:
            self._faults.extend([Fault(body=body)] * times)

    async def load(self, namespace: str, vectors_by_id: Mapping[int, Array]) -> None:
        """write vectors through the real client's write call (upsert_columns), as ingest does."""
        async with turbopuffer.AsyncTurbopuffer(api_key="load", base_url=self.base_url) as client:
            await client.namespace(namespace).write(
                upsert_columns={
                    "id": list(vectors_by_id),
                    "vector": [[float(x) for x in v] for v in vectors_by_id.values()],
                },
                distance_metric="cosine_distance",
            )

    def reset(self) -> None:
        """forget recorded requests and pending faults (the data stays)."""
        with self._lock:
            self.requests.clear()
            self._faults.clear()

    def requests_of(self, kind: str) -> list[RecordedRequest]:
        with self._lock:
            return [request for request in self.requests if request.kind == kind]

    # --- handlers ----------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = raw
        with self._lock:
            self.requests.append(
                RecordedRequest(request.method, request.path, request.query_string, body)
            )
            fault = self._faults.popleft() if self._faults else None
        if fault is not None:
            if fault.delay and self.stopping is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), timeout=fault.delay)
            if fault.body is not None:
                return web.Response(body=fault.body, content_type="application/json")
            if fault.status is not None:
                response = _error(fault.status, f"injected fault {fault.status}")
                if fault.retry_after_ms is not None:
                    response.headers["retry-after-ms"] = str(fault.retry_after_ms)
                return response
        name = request.match_info["namespace"]
        try:
            with self._lock:
                return _json(200, self._answer(request, name, body))
        except NamespaceNotFound:
            return _error(404, f"🤷 namespace '{name}' was not found")
        except BadRequest as error:
            return _error(400, str(error))

    def _answer(self, request: web.Request, name: str, body: Any) -> dict[str, Any]:
        if request.method == "DELETE":
            if self.namespaces.pop(name, None) is None:
                raise NamespaceNotFound(name)
            return {"status": "OK"}
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        if request.path.endswith("/query"):
            return self._query(name, body)
        return self._write(name, body)

    def _query(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        namespace = self.namespaces.get(name)
        if namespace is None:
            raise NamespaceNotFound(name)
        encoding = body.get("vector_encoding", "float")
        if encoding not in ("float", "base64"):
            raise BadRequest(f"unknown vector_encoding {encoding!r}")
        answer: dict[str, Any] = {"billing": BILLING, "performance": PERFORMANCE}
        if "queries" not in body:
            return {**answer, "rows": _run(namespace, body, encoding)}
        queries = body["queries"]
        if not isinstance(queries, list) or not 1 <= len(queries) <= MAX_SUBQUERIES:
            raise BadRequest(f"queries must be a list of 1..{MAX_SUBQUERIES} queries")
        if any(
            isinstance(q, dict) and ("vector_encoding" in q or "consistency" in q) for q in queries
        ):
            raise BadRequest("vector_encoding and consistency belong on the multi-query's root")
        return {**answer, "results": [{"rows": _run(namespace, q, encoding)} for q in queries]}

    def _write(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        documents = _written_documents(body)
        deletes = body.get("deletes") or []
        existing = self.namespaces.get(name)
        metric = body.get("distance_metric")
        if existing is None:
            if metric not in DISTANCE_METRICS:
                raise BadRequest("distance_metric is required on a namespace's first write")
            existing = Namespace(metric)
        elif metric is not None and metric != existing.distance_metric:
            raise BadRequest(f"the namespace uses {existing.distance_metric}, not {metric}")
        # stage the write: a rejected row leaves the namespace as it was
        staged = Namespace(existing.distance_metric, dict(existing.documents), existing.dimensions)
        for doc_id, values in documents:
            staged.upsert(doc_id, values)
        for doc_id in deletes:
            staged.documents.pop(doc_id, None)
        self.namespaces[name] = staged
        return {
            **{"status": "OK", "message": "write succeeded", "rows_upserted": len(documents)},
            **{"rows_affected": len(documents) + len(deletes)},
            "billing": {"billable_logical_bytes_written": 0},
        }


def _json(status: int, payload: Mapping[str, Any]) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(payload), content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json(status, {"status": "error", "error": message})  # turbopuffer's error shape


def _parse_vector(raw: object) -> Array:
    try:
        if isinstance(raw, str):
            vector = np.frombuffer(base64.b64decode(raw, validate=True), dtype="<f4")
        else:
            vector = np.asarray(raw, dtype=np.float32)
    except (TypeError, ValueError) as error:  # binascii.Error is a ValueError
        raise BadRequest(f"unreadable vector: {error}") from error
    if vector.ndim != 1 or vector.size == 0 or not np.isfinite(vector).all():
        raise BadRequest("a vector must be a non-empty list of finite floats")
    return vector.astype(np.float32)


def _written_documents(body: Mapping[str, Any]) -> list[tuple[object, dict[str, Any]]]:
    documents: list[tuple[object, dict[str, Any]]] = []
    for row in body.get("upsert_rows") or []:
        if not isinstance(row, dict) or "id" not in row:
            raise BadRequest("each upserted row needs an id")
        documents.append((row["id"], {k: v for k, v in row.items() if k != "id"}))
    columns = body.get("upsert_columns") or {}
    ids = columns.get("id", [])
    if not isinstance(ids, list) or any(len(column) != len(ids) for column in columns.values()):
        raise BadRequest("upsert_columns needs an id column and columns of equal length")
    for index, doc_id in enumerate(ids):
        documents.append((doc_id, {k: v[index] for k, v in columns.items() if k != "id"}))
    return documents


def _run(namespace: Namespace, query: Any, encoding: str) -> list[dict[str, Any]]:
    """one (sub)query: filter, rank, cut to top_k, project the attributes asked for."""
    if not isinstance(query, dict):
        raise BadRequest("a query must be a JSON object")
    top_k = query.get("top_k")
    if not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise BadRequest(f"top_k must be an integer in 1..{MAX_TOP_K}")
    matches = _compile_filter(query.get("filters"))
    ids = [doc_id for doc_id, doc in namespace.documents.items() if matches(doc_id, doc)]
    rank_by = query.get("rank_by")
    distances: dict[int, float] = {}
    if isinstance(rank_by, list) and len(rank_by) == 3 and rank_by[:2] == ["vector", "ANN"]:
        if query.get("distance_metric", namespace.distance_metric) != namespace.distance_metric:
            raise BadRequest(f"this namespace ranks by {namespace.distance_metric}")
        ids = [i for i in ids if isinstance(namespace.documents[i].get("vector"), np.ndarray)]
        distances = _distances(namespace, ids, _parse_vector(rank_by[2]))
        ids.sort(key=lambda i: (distances[i], i))
    elif rank_by in (["id", "asc"], ["id", "desc"]):
        ids.sort(reverse=rank_by[1] == "desc")
    else:  # turbopuffer also orders by other attributes and BM25; nothing here needs it
        raise BadRequest(f"unsupported rank_by {rank_by!r}")
    include = query.get("include_attributes", False)
    rows = []
    for doc_id in ids[:top_k]:
        document = namespace.documents[doc_id]
        row: dict[str, Any] = {"id": doc_id}
        for name in list(document) if include is True else (include or []):
            if name == "vector" and document.get("vector") is not None:
                row["vector"] = _encode(document["vector"], encoding)
            elif name != "id":
                row[name] = document.get(name)
        if doc_id in distances:
            row["$dist"] = distances[doc_id]
        rows.append(row)
    return rows


def _distances(namespace: Namespace, ids: list[int], target: Array) -> dict[int, float]:
    if len(target) != namespace.dimensions:
        raise BadRequest(f"query of {len(target)} dims, namespace has {namespace.dimensions}")
    if not ids:
        return {}
    matrix = np.stack([namespace.documents[i]["vector"] for i in ids])
    if namespace.distance_metric == "cosine_distance":
        norms = np.linalg.norm(matrix, axis=1) * np.linalg.norm(target)
        values = 1.0 - (matrix @ target) / np.where(norms == 0, 1.0, norms)
    else:
        values = ((matrix - target) ** 2).sum(axis=1)
    return {doc_id: float(value) for doc_id, value in zip(ids, values, strict=True)}


def _encode(vector: object, encoding: str) -> object:
    if not isinstance(vector, np.ndarray):
        return vector  # planted by seed_raw: served exactly as stored
    if encoding == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return [float(x) for x in vector]


def _compile_filter(condition: Any) -> Predicate:
    """a filter as the client serialises it (nested JSON arrays), as a predicate."""
    if condition is None:
        return lambda _id, _doc: True
    if not isinstance(condition, list) or len(condition) < 2:
        raise BadRequest(f"malformed filter {condition!r}")
    head = condition[0]
    if head in ("And", "Or") and isinstance(condition[1], list):
        parts = [_compile_filter(part) for part in condition[1]]
        combine = all if head == "And" else any
        return lambda i, doc: combine(part(i, doc) for part in parts)
    if head == "Not":
        inner = _compile_filter(condition[1])
        return lambda i, doc: not inner(i, doc)
    if len(condition) != 3:
        raise BadRequest(f"malformed filter {condition!r}")
    attribute, operator, operand = condition

    def value(i: int, doc: Mapping[str, Any]) -> Any:
        return i if attribute == "id" else doc.get(attribute)

    if operator in ("Eq", "NotEq"):
        wanted = operator == "Eq"
        return lambda i, doc: (value(i, doc) == operand) == wanted
    if operator in ("In", "NotIn") and isinstance(operand, list):
        members = set(operand)
        wanted = operator == "In"
        return lambda i, doc: (value(i, doc) in members) == wanted
    raise BadRequest(f"unsupported filter {condition!r}")
