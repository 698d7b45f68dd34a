"""`python -m bench pds-client`: the CPU one PDS read costs the client, through
`PdsRecords` now (aiohttp) beside the client it replaced (httpx over httpcore), in
the same run.

a cold deploy or a refresh reads one list record per playlist from its owner's
PDS: in `bench scale`'s profile (issue 20) those reads were about a sixth of the
worker's CPU, most of it in httpx's async stack. both paths here make the same
request (`com.atproto.repo.getRecord`, the same headers and bounds) and hand the
same bytes to the same decoder; only the HTTP client differs. the PDS stand-in
(`bench.loopback.pds.LoopbackPds`) runs in a thread of its own, and the figure is
the CPU time of the client's thread (time.thread_time), so the server's work is
left out. two shapes: one read after another, and bursts of `BURST` at once (as a
reconcile pass reads). median of `rounds` rounds, the paths alternated.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

import httpx
import orjson
from rich.console import Console
from rich.table import Table

from bench.loopback.pds import LoopbackPds, list_record_value
from jetstream.records import RecordLimits
from worker.demo.wire import did, track_uri
from worker.identity.handshake import bounded_transport
from worker.identity.pds import (
    MAX_CONNECTIONS,
    REQUEST_HEADERS,
    ListRecord,
    PdsRecords,
    RecordUnavailable,
)

ROUNDS: Final = 7
READS_PER_ROUND: Final = 320
BURST: Final = 16
TRACKS: Final = 23  # the median playlist of the benchmarks' world (`bench.floor_world`)
COLLECTION: Final = "fm.plyr.list"
CID: Final = "bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


class HttpxPdsRecords(PdsRecords):
    """the reference: `PdsRecords` with the HTTP client it had before, httpx over
    httpcore (`bounded_transport`, every connection kept), the same URL, headers,
    status and size checks and decoder. loopback only: no address pinning."""

    def __init__(self) -> None:
        super().__init__(limits=RecordLimits(), list_collection=COLLECTION, allow_private=True)
        every = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=None)
        self._httpx = httpx.AsyncClient(
            transport=bounded_transport(every),
            timeout=httpx.Timeout(self.timeout_seconds),
            follow_redirects=False,
            headers=REQUEST_HEADERS,
            trust_env=False,
        )

    async def _get(self, base: str, method: str, params: dict[str, str], max_bytes: int) -> bytes:
        url = f"{base.rstrip('/')}/xrpc/{method}"  # the benchmark's own loopback PDS
        try:
            async with (
                asyncio.timeout(self.timeout_seconds),
                self._httpx.stream("GET", url, params=params) as response,
            ):
                if response.status_code != 200:
                    raise RecordUnavailable(f"status_{response.status_code // 100}xx")
                chunks: list[bytes] = []
                received = 0
                async for chunk in response.aiter_bytes():
                    received += len(chunk)
                    if received > max_bytes:
                        raise RecordUnavailable("too_large")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.HTTPError as error:
            raise RecordUnavailable("unreachable") from error

    async def aclose(self) -> None:
        await self._httpx.aclose()
        await super().aclose()


@dataclass(frozen=True)
class PathFigures:
    name: str
    sequential_us: float  # client CPU per read, one after another
    burst_us: float  # client CPU per read, BURST at once


def record_uris(count: int) -> list[str]:
    return [f"at://{did(1)}/{COLLECTION}/3mbench{n:07d}" for n in range(count)]


async def thread_us_per_read(read: Callable[[], Awaitable[int]], reads: int) -> float:
    """CPU µs of this thread per record `read` returns, over `reads` records."""
    started = time.thread_time()
    done = 0
    while done < reads:
        done += await read()
    return (time.thread_time() - started) / done * 1e6


async def measure(console: Console, rounds: int, reads: int) -> list[PathFigures]:
    pds = LoopbackPds(thread_name="bench-pds").start_in_thread()
    uris = record_uris(BURST)
    value = list_record_value([track_uri(n) for n in range(1, TRACKS + 1)])
    for uri in uris:
        pds.put(uri, CID, value)
    clients: dict[str, PdsRecords] = {
        "aiohttp (PdsRecords now)": PdsRecords(
            limits=RecordLimits(), list_collection=COLLECTION, allow_private=True
        ),
        "httpx (the client before)": HttpxPdsRecords(),
    }
    try:
        expected = ListRecord(tuple(track_uri(n) for n in range(1, TRACKS + 1)), CID)
        for name, client in clients.items():  # warm-up, and the same records through both
            got = await asyncio.gather(*(client.fetch(pds.url, uri) for uri in uris))
            if any(record != expected for record in got):
                raise RuntimeError(f"{name} read the records differently")
        samples: dict[str, dict[str, list[float]]] = {
            name: {"sequential": [], "burst": []} for name in clients
        }
        for round_index in range(rounds):
            console.print(f"round {round_index + 1}/{rounds}", style="dim")
            for name, client in clients.items():

                async def one(client: PdsRecords = client) -> int:
                    await client.fetch(pds.url, uris[0])
                    return 1

                async def burst(client: PdsRecords = client) -> int:
                    await asyncio.gather(*(client.fetch(pds.url, uri) for uri in uris))
                    return len(uris)

                samples[name]["sequential"].append(await thread_us_per_read(one, reads))
                samples[name]["burst"].append(await thread_us_per_read(burst, reads))
    finally:
        for client in clients.values():
            await client.aclose()
        pds.stop_thread()
    return [
        PathFigures(
            name,
            statistics.median(shapes["sequential"]),
            statistics.median(shapes["burst"]),
        )
        for name, shapes in samples.items()
    ]


def report(figures: list[PathFigures], rounds: int, console: Console) -> None:
    now, before = figures
    table = Table(title=f"client CPU per getRecord ({TRACKS}-track record), µs, median of {rounds}")
    table.add_column("client")
    table.add_column("one after another", justify="right")
    table.add_column(f"{BURST} at once", justify="right")
    for path in figures:
        table.add_row(path.name, f"{path.sequential_us:,.0f}", f"{path.burst_us:,.0f}")
    table.add_row(
        "now / before",
        f"{now.sequential_us / before.sequential_us:.2f}x",
        f"{now.burst_us / before.burst_us:.2f}x",
    )
    console.print(table)


def main(
    *, rounds: int = ROUNDS, reads: int = READS_PER_ROUND, json_path: Path | None = None
) -> None:
    console = Console()
    figures = asyncio.run(measure(console, rounds, reads))
    report(figures, rounds, console)
    if json_path is not None:
        json_path.write_bytes(orjson.dumps([asdict(path) for path in figures]))
