"""the real vector store: CLAP embeddings in a turbopuffer namespace.

two calls per recompute, whatever the playlist's size: one id-ordered lookup
fetches the playlist's vectors (never a dummy ANN query), one multi-query sends
every query vector at once with the playlist's own tracks excluded server-side.
a multi-query's sub-queries are independent (each its own filter and `top_k`), so
several recomputes' searches can share one request: `subqueries` checks and
encodes a caller's, `multi_query` sends up to 16 of anyone's (`engine.ports.
MultiQueryStore`, used by `engine.coalescing_store`).

the client holds an aiohttp session, which belongs to the event loop it was
opened in: one client per loop (`engine.loop_clients`), opened on first use there
and reused after. `aclose()` closes them all.

a namespace that was never written (404) means "no embeddings yet", not an
error. everything else is sorted for the caller's retry policy: 429, 5xx,
timeouts and dropped connections are transient; other 4xx and answers that do
not parse are permanent. what comes back is validated row by row: a bad row is
skipped and counted, never fatal.

both calls go through the client's generic `post` (its documented way to send a
body as is), so its retries, timeouts, auth and error types still apply, but
neither its request transform (a recursive walk over every float and id of a
body) nor its response models (pydantic objects per row) run: the answer is
parsed once by orjson and checked here, which the rows needed anyway. vectors
come back as base64 little-endian float32 (`vector_encoding="base64"`), decoded
by pybase64 and read by NumPy without a Python float per component. measured
with `python -m bench store`: a 500-track lookup cost ~12 ms of client CPU
through the models, mostly per-row decoding (README, "Benchmarks").
"""

from __future__ import annotations

import binascii
import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, NamedTuple, TypeVar, cast

import numpy as np
import orjson
import pybase64
import turbopuffer

from engine.candidate_rows import checked_candidates
from engine.loop_clients import LoopClients
from engine.ports import PermanentStoreError, TransientStoreError, VectorStoreError
from engine.types import Candidate, Vector

log = logging.getLogger(__name__)

# turbopuffer's documented ceilings (turbopuffer.com/docs/limits and /docs/query):
# "Max queries in a multi-query request: 16"; top_k "Maximum: 1200 (adjustable upon
# request)" -- newer docs say 10,000, and we keep to the older, stricter figure.
MAX_SUBQUERIES_PER_REQUEST = 16
MAX_TOP_K = 1200

# ids per id-ordered lookup. a playlist holds at most 500 tracks (DESIGN.md), so a
# whole playlist is one request; top_k = batch size stays well under MAX_TOP_K.
LOOKUP_BATCH_SIZE = 500

# turbopuffer documents no limit on a filter's value list; this bound only catches a
# caller gone wrong (a playlist excludes at most its own 500 tracks).
MAX_EXCLUDED_IDS = 10_000

CLAP_DIMENSIONS = 512
DISTANCE_METRIC: Final = "cosine_distance"  # so `$dist` is 1 - cosine similarity, 0..2

# turbopuffer's rule for namespace names ([A-Za-z0-9-_.]{1,128}): a name that fits
# needs no escaping in the request path
_NAMESPACE_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")
# the wire's float32 (little-endian); on a big-endian machine rows are converted
_WIRE_FLOAT32: Final = np.dtype("<f4")
_NATIVE_WIRE = sys.byteorder == "little"

_REGION_ENV = "TURBOPUFFER_REGION"
_BASE_URL_ENV = "TURBOPUFFER_BASE_URL"

_T = TypeVar("_T")


@dataclass
class TurbopufferStats:
    """what this store skipped or opened, for logs and tests."""

    clients_opened: int = 0
    rejected_vectors: int = 0  # lookup rows with a missing, malformed or non-finite vector
    rejected_candidates: int = 0  # ANN rows with a bad id or distance, or an excluded id


class AnnSubquery(NamedTuple):
    """one nearest-neighbour search, encoded for the wire (`TurbopufferStore.subqueries`)."""

    body: dict[str, Any]  # the sub-query as sent
    top_k: int
    excluded: frozenset[int]  # ids its answer must not hold (checked again on the way back)


class _NamespaceMissingError(Exception):
    """the namespace was never written (404): no embeddings, no neighbours."""


class TurbopufferStore:
    """`engine.ports.VectorStore` over one turbopuffer namespace (and a
    `MultiQueryStore`: several callers' searches can share one request)."""

    # what one request may carry (engine.ports.MultiQueryStore)
    max_subqueries: Final = MAX_SUBQUERIES_PER_REQUEST
    max_lookup_ids: Final = LOOKUP_BATCH_SIZE

    def __init__(
        self,
        *,
        api_key: str,
        namespace: str,
        region: str | None = None,
        base_url: str | None = None,
        timeout: float = 10.0,
        max_retries: int = 2,
        dimensions: int = CLAP_DIMENSIONS,
    ) -> None:
        if not api_key:
            raise ValueError("a turbopuffer API key is required")
        if not namespace:
            raise ValueError("a turbopuffer namespace is required")
        if not _NAMESPACE_NAME.fullmatch(namespace):
            raise ValueError(f"not a turbopuffer namespace name: {namespace!r}")
        if (region is None) == (base_url is None):
            raise ValueError("give exactly one of region and base_url")
        if not (timeout > 0 and max_retries >= 0 and dimensions > 0):
            raise ValueError("timeout and dimensions must be positive, max_retries >= 0")
        _check_environment(region=region, base_url=base_url)
        self._api_key = api_key
        self._namespace = namespace
        self._query_path = f"/v2/namespaces/{namespace}/query"
        self._multi_query_path = f"{self._query_path}?stainless_overload=multiQuery"
        self._region = region
        self._base_url = base_url
        self._timeout = timeout
        self._max_retries = max_retries
        self._dimensions = dimensions
        self._clients = LoopClients(
            self._open_client,
            _close_client,
            what="turbopuffer client",
            close_seconds=timeout,
        )
        self.stats = TurbopufferStats()

    def __repr__(self) -> str:  # no API key here, ever
        where = self._base_url or self._region
        return f"TurbopufferStore(namespace={self._namespace!r}, at={where!r})"

    # --- the port --------------------------------------------------------------

    async def get_vectors(self, track_ids: Sequence[int]) -> dict[int, Vector]:
        """id-ordered lookups of the ids' vectors, LOOKUP_BATCH_SIZE ids per request."""
        wanted = list(dict.fromkeys(_plain_ids(track_ids)))
        if not wanted:
            return {}
        vectors: dict[int, Vector] = {}
        for batch in _chunks(wanted, LOOKUP_BATCH_SIZE):
            lookup = {
                "rank_by": ["id", "asc"],
                "filters": ["id", "In", batch],
                "include_attributes": ["vector"],
                "top_k": len(batch),
                "vector_encoding": "base64",  # 4 bytes a float, decoded by numpy
            }
            try:
                answer = await self._post("get_vectors", self._query_path, lookup)
            except _NamespaceMissingError:
                return {}  # no namespace yet: nothing has an embedding
            vectors.update(self._decoded_rows(_rows(answer, "get_vectors"), set(batch)))
        return vectors

    async def query_many(
        self,
        vectors: Sequence[Vector],
        *,
        top_k: int,
        exclude_ids: Iterable[int],
    ) -> list[list[Candidate]]:
        """one multi-query per MAX_SUBQUERIES_PER_REQUEST vectors, results in input order."""
        subqueries = self.subqueries(vectors, top_k=top_k, exclude_ids=exclude_ids)
        results: list[list[Candidate]] = []
        for chunk in _chunks(subqueries, MAX_SUBQUERIES_PER_REQUEST):
            try:
                results.extend(await self._multi_query(chunk))
            except _NamespaceMissingError:
                return [[] for _ in subqueries]  # no namespace yet: no neighbours either
        return results

    # --- several callers' searches in one request (engine.ports.MultiQueryStore) ------

    def subqueries(
        self, vectors: Sequence[Vector], *, top_k: int, exclude_ids: Iterable[int]
    ) -> list[AnnSubquery]:
        """the searches `query_many` would send for these arguments, checked and encoded
        (bounds as there: `top_k`, the vectors' size, MAX_EXCLUDED_IDS); sends nothing."""
        if not 1 <= top_k <= MAX_TOP_K:
            raise ValueError(f"top_k must be in 1..{MAX_TOP_K}, got {top_k}")
        targets = [self._query_vector(vector) for vector in vectors]
        excluded = sorted(set(_plain_ids(exclude_ids)))
        if len(excluded) > MAX_EXCLUDED_IDS:
            raise ValueError(f"{len(excluded)} excluded ids, more than {MAX_EXCLUDED_IDS}")
        excluded_set = frozenset(excluded)  # one set for all of them: answers are checked on it
        return [
            AnnSubquery(_ann_subquery(target, top_k, excluded), top_k, excluded_set)
            for target in targets
        ]

    async def multi_query(self, subqueries: Sequence[AnnSubquery]) -> list[list[Candidate]]:
        """one multi-query request of 1..MAX_SUBQUERIES_PER_REQUEST searches, whoever
        asked for each; each answer is checked against its own search's exclusions."""
        if not 1 <= len(subqueries) <= MAX_SUBQUERIES_PER_REQUEST:
            raise ValueError(
                f"a multi-query holds 1..{MAX_SUBQUERIES_PER_REQUEST} searches, "
                f"got {len(subqueries)}"
            )
        try:
            return await self._multi_query(subqueries)
        except _NamespaceMissingError:
            return [[] for _ in subqueries]

        # --- lifecycle ---------------------------------------------------------------

    @property
    def open_clients(self) -> int:
        """how many event loops hold an open client of this store."""
        return len(self._clients)

    async def aclose(self) -> None:
        """close every client this store opened; safe to call twice."""
        await self._clients.aclose()

    async def __aenter__(self) -> TurbopufferStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- internals ---------------------------------------------------------------

    def _open_client(self) -> turbopuffer.AsyncTurbopuffer:
        client = turbopuffer.AsyncTurbopuffer(
            api_key=self._api_key,
            region=self._region,
            base_url=self._base_url,
            timeout=self._timeout,
            max_retries=self._max_retries,
        )
        self.stats.clients_opened += 1
        return client

    async def _post(self, call: str, path: str, body: dict[str, Any]) -> Any:
        """POST `body` to `path` with this loop's client; the answer, parsed by orjson."""
        client = self._clients.current()
        try:
            raw = await client.post(path, cast_to=bytes, body=body)
        except turbopuffer.NotFoundError as error:
            raise _NamespaceMissingError from error
        except turbopuffer.APIError as error:
            raise self._store_error(call, error) from error
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise self._store_error(call, error) from error

    async def _multi_query(self, subqueries: Sequence[AnnSubquery]) -> list[list[Candidate]]:
        body = {"queries": [subquery.body for subquery in subqueries]}
        response = await self._post("query_many", self._multi_query_path, body)
        answers = response.get("results") if isinstance(response, dict) else None
        if not isinstance(answers, list) or len(answers) != len(subqueries):
            raise PermanentStoreError(
                f"turbopuffer query_many on {self._namespace!r}: the answer does not "
                f"hold one result per subquery ({len(subqueries)})"
            )
        return [
            self._candidates(
                _rows(answer, "query_many"), top_k=subquery.top_k, excluded=subquery.excluded
            )
            for subquery, answer in zip(subqueries, answers, strict=True)
        ]

    def _query_vector(self, vector: Vector) -> list[float]:
        with np.errstate(over="ignore"):  # out-of-range floats become inf, refused below
            array = np.asarray(vector, dtype=np.float32)
        if array.shape != (self._dimensions,) or not np.isfinite(array).all():
            raise ValueError(f"a query vector must be {self._dimensions} finite floats")
        floats: list[float] = array.tolist()  # the float32 values as Python floats, exactly
        return floats

    def _decoded_rows(self, rows: list[Any], asked: set[int]) -> dict[int, Vector]:
        """the rows' vectors by id: finite, non-zero, the right size, ids that were asked.

        each vector is decoded to its own bytes and read as a read-only array over
        them (no copy; nothing downstream writes into a playlist's rows, and a
        cached vector must not change under its other users); the checks run on
        all of them at once, one matrix of the joined bytes.
        """
        size = self._dimensions * _WIRE_FLOAT32.itemsize
        ids: list[int] = []
        packed: list[bytes] = []
        rejected = 0
        for row in rows:
            try:
                track_id, raw = row["id"], row["vector"]
            except (KeyError, TypeError):  # no vector, or not a row at all
                rejected += 1
                continue
            # orjson gives exact ints; a bool or a float id is refused
            if type(track_id) is not int or track_id not in asked:
                rejected += 1
                continue
            vector_bytes = _packed_vector(raw, size)
            if vector_bytes is None:
                rejected += 1
                continue
            ids.append(track_id)
            packed.append(vector_bytes)
        vectors: dict[int, Vector] = {}
        if packed:
            matrix = np.frombuffer(b"".join(packed), dtype=_WIRE_FLOAT32).reshape(len(ids), -1)
            usable = np.isfinite(matrix).all(axis=1) & matrix.any(axis=1)
            unusable = set(np.flatnonzero(~usable).tolist())
            rejected += len(unusable)
            for index, (track_id, vector_bytes) in enumerate(zip(ids, packed, strict=True)):
                if index not in unusable:
                    vectors[track_id] = _vector_of(vector_bytes)
        if rejected:
            self.stats.rejected_vectors += rejected
            log.warning("turbopuffer get_vectors: skipped %d unusable rows", rejected)
        return vectors

    def _candidates(
        self, rows: list[Any], *, top_k: int, excluded: frozenset[int]
    ) -> list[Candidate]:
        candidates, rejected = checked_candidates(rows, top_k=top_k, excluded=excluded)
        if rejected:
            self.stats.rejected_candidates += rejected
            log.warning("turbopuffer query_many: skipped %d unusable rows", rejected)
        return candidates

    def _store_error(self, call: str, error: Exception) -> VectorStoreError:
        """sort a client failure into transient or permanent, without the API key."""
        what = f"turbopuffer {call} on namespace {self._namespace!r}"
        if isinstance(error, turbopuffer.APIStatusError):
            detail = error.body.get("error") if isinstance(error.body, dict) else None
            message = f"{what} failed: HTTP {error.status_code}"
            if isinstance(detail, str):
                message += f": {detail[:200]}"
            message = message.replace(self._api_key, "***")
            if error.status_code in (408, 409, 429) or error.status_code >= 500:
                return TransientStoreError(message)
            return PermanentStoreError(message)
        if isinstance(error, turbopuffer.APITimeoutError):
            return TransientStoreError(f"{what} timed out after {self._timeout}s")
        if isinstance(error, turbopuffer.APIConnectionError):
            return TransientStoreError(f"{what} failed: could not connect")
        return PermanentStoreError(f"{what} failed: malformed answer ({type(error).__name__})")


def _check_environment(*, region: str | None, base_url: str | None) -> None:
    """fail now, not at the first query, where the client would trip on its env fallbacks.

    the client fills a missing region or base URL from TURBOPUFFER_REGION /
    TURBOPUFFER_BASE_URL and refuses a region next to a base URL without a
    `{region}` placeholder, so one of ours plus the other from the environment
    would break every call.
    """
    if base_url is not None and "{region}" not in base_url and os.environ.get(_REGION_ENV):
        raise ValueError(f"{_REGION_ENV} is set but a base URL overrides it; unset one")
    if region is not None and "{region}" not in os.environ.get(_BASE_URL_ENV, "{region}"):
        raise ValueError(f"{_BASE_URL_ENV} is set but a region was given; unset one")


def _ann_subquery(target: list[float], top_k: int, excluded: list[int]) -> dict[str, Any]:
    subquery: dict[str, Any] = {
        "rank_by": ["vector", "ANN", target],
        "top_k": top_k,
        "distance_metric": DISTANCE_METRIC,
    }
    if excluded:  # an empty NotIn list is noise on the wire
        subquery["filters"] = ["id", "NotIn", excluded]
    return subquery


def _rows(answer: object, call: str) -> list[Any]:
    """the rows of a (sub)query answer: we always rank, so a row list must be there."""
    rows = answer.get("rows") if isinstance(answer, dict) else None
    if not isinstance(rows, list):
        raise PermanentStoreError(f"turbopuffer {call}: the answer holds no row list")
    return rows


def _packed_vector(raw: object, size: int) -> bytes | None:
    """a row's vector as `size` bytes of little-endian float32, or None.

    base64 is what we ask for; a list of floats (what turbopuffer sends without
    `vector_encoding`) is read too, so a proxy that drops the option costs speed only.
    """
    try:
        if isinstance(raw, str):
            packed = pybase64.b64decode(raw, validate=True)
        elif isinstance(raw, list):
            with np.errstate(over="ignore"):  # out-of-range floats become inf, refused later
                packed = np.asarray(raw, dtype=_WIRE_FLOAT32).tobytes()
        else:
            return None
    except (binascii.Error, TypeError, ValueError):
        return None
    return packed if len(packed) == size else None


def _vector_of(packed: bytes) -> Vector:
    """a native float32 array over `packed` (read-only: bytes are immutable)."""
    vector: Vector = np.frombuffer(packed, dtype=_WIRE_FLOAT32)
    if not _NATIVE_WIRE:
        vector = vector.astype(np.float32)
        vector.flags.writeable = False
    return vector


def _plain_ids(track_ids: Iterable[object]) -> list[int]:
    """the ids as plain ints, in order; one pass when they are plain already (the usual)."""
    given = list(track_ids)
    if all(type(track_id) is int for track_id in given):
        return cast(list[int], given)  # just checked
    return [_checked_id(track_id) for track_id in given]


def _checked_id(track_id: object) -> int:
    """an id from the caller as a plain int (numpy integers welcome: they come from arrays)."""
    if isinstance(track_id, bool) or not isinstance(track_id, int | np.integer):
        raise TypeError(f"track ids are integers, got {track_id!r}")
    return int(track_id)


def _chunks(items: list[_T], size: int) -> Iterator[list[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def _close_client(client: turbopuffer.AsyncTurbopuffer) -> None:
    await client.close()
