"""the turbopuffer-speaking test server in a process of its own, with a control port.

the reliability runs put the consumer, the worker and the API in one process;
an exact search over the whole catalogue in that same process would starve
them (and turbopuffer is a remote service anyway). so the server runs here, as
`python -m bench.reliability.turbopuffer <vectors.npz>`, and its fault
hooks are reached over a second, tiny HTTP app:

    POST /fail?status=429&times=N     the next N requests answer `status`
    POST /delay?seconds=S&times=N     the next N requests stall S seconds first
    POST /reset                       no pending faults, requests forgotten
    GET  /requests                    {"count": requests seen since the last reset}

the namespace is only read once seeded, so this process keeps each query's
stacked matrix instead of stacking every document's vector per query (the
server's one hot spot; the answers are the same).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
from aiohttp import web

from bench.loopback import turbopuffer as turbopuffer_server
from bench.loopback.turbopuffer import Namespace, TurbopufferServer

CONTROL_TIMEOUT_SECONDS = 5.0


def save_vectors(path: Path, vectors_by_id: dict[int, Any]) -> None:
    ids = np.array(sorted(vectors_by_id), dtype=np.int64)
    matrix = np.stack([np.asarray(vectors_by_id[int(i)], dtype=np.float32) for i in ids])
    with path.open("wb") as handle:
        np.savez(handle, ids=ids, vectors=matrix)


class RemoteTurbopuffer:
    """the parent's handle on the server process: its URL and its fault hooks."""

    def __init__(self, vectors: Path, namespace: str) -> None:
        self.vectors = vectors
        self.namespace = namespace
        self.base_url = ""
        self._control = ""
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.reliability.turbopuffer",
            str(self.vectors),
            self.namespace,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self._process.stdout is not None
        line = await asyncio.wait_for(self._process.stdout.readline(), 60)
        api_port, control_port = (int(part) for part in line.split())
        self.base_url = f"http://127.0.0.1:{api_port}"
        self._control = f"http://127.0.0.1:{control_port}"

    async def stop(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            await self._process.wait()

    async def _post(self, path: str, **params: float) -> None:
        async with httpx.AsyncClient(timeout=CONTROL_TIMEOUT_SECONDS) as client:
            (await client.post(self._control + path, params=params)).raise_for_status()

    async def fail_next(self, status: int, *, times: int = 1) -> None:
        await self._post("/fail", status=status, times=times)

    async def delay_next(self, seconds: float, *, times: int = 1) -> None:
        await self._post("/delay", seconds=seconds, times=times)

    async def reset(self) -> None:
        await self._post("/reset")

    async def request_count(self) -> int:
        async with httpx.AsyncClient(timeout=CONTROL_TIMEOUT_SECONDS) as client:
            response = await client.get(self._control + "/requests")
            response.raise_for_status()
            return int(response.json()["count"])


# --- the server process ------------------------------------------------------------------

_MATRICES: dict[int, tuple[dict[int, int], npt.NDArray[np.float32]]] = {}


def _cached_distances(
    namespace: Namespace, ids: list[int], target: npt.NDArray[np.float32]
) -> dict[int, float]:
    """`turbopuffer_server._distances` over a matrix stacked once (cosine only)."""
    if len(target) != namespace.dimensions:
        raise turbopuffer_server.BadRequest("query dimensions differ from the namespace's")
    if not ids:
        return {}
    cached = _MATRICES.get(id(namespace))
    if cached is None:
        order = [i for i, doc in namespace.documents.items() if doc.get("vector") is not None]
        matrix = np.stack([namespace.documents[i]["vector"] for i in order]).astype(np.float32)
        matrix /= np.where(
            (norms := np.linalg.norm(matrix, axis=1, keepdims=True)) == 0, 1.0, norms
        )
        rows = {doc_id: row for row, doc_id in enumerate(order)}
        cached = _MATRICES[id(namespace)] = (rows, matrix)
    row_of, matrix = cached
    norm = float(np.linalg.norm(target)) or 1.0
    values = 1.0 - matrix[[row_of[i] for i in ids]] @ (target / norm)
    return {doc_id: float(value) for doc_id, value in zip(ids, values, strict=True)}


async def _serve(vectors: Path, namespace: str) -> None:
    with np.load(vectors, allow_pickle=False) as data:
        ids, matrix = data["ids"], data["vectors"]
    server = TurbopufferServer()
    server.seed(namespace, {int(i): matrix[row] for row, i in enumerate(ids)})
    turbopuffer_server._distances = _cached_distances  # read-only namespace: see above
    await server.start()

    async def fail(request: web.Request) -> web.Response:
        server.fail_next(int(request.query["status"]), times=int(request.query["times"]))
        return web.json_response({})

    async def delay(request: web.Request) -> web.Response:
        server.delay_next(float(request.query["seconds"]), times=int(request.query["times"]))
        return web.json_response({})

    async def reset(_: web.Request) -> web.Response:
        server.reset()
        return web.json_response({})

    async def requests(_: web.Request) -> web.Response:
        return web.json_response({"count": len(server.requests)})

    control = web.Application()
    control.router.add_post("/fail", fail)
    control.router.add_post("/delay", delay)
    control.router.add_post("/reset", reset)
    control.router.add_get("/requests", requests)
    runner = web.AppRunner(control, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    control_port = runner.addresses[0][1]
    print(server.port, control_port, flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await server.stop()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(Path(sys.argv[1]), sys.argv[2]))
