"""runs `python -m bench abuse`: each attack after a quiet window of its own, legitimate
owners asking throughout, and the table (see `bench.abuse`)."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import httpx
import redis.asyncio as aioredis
from aiohttp import web
from rich.console import Console
from rich.table import Table

from bench.abuse.attacks import ATTACKS, SERVICE_DID, Attack, Target
from bench.abuse.people import Person
from bench.abuse.server import PUBLIC_STANDIN, TLS_SILENT_DOMAIN, TLS_SILENT_SUFFIX
from bench.api_server import INTERNAL_TOKEN, BenchPlaylist, bench_playlists
from bench.loopback.dns import LoopbackDns
from bench.loopback.http import LoopbackHttpServer
from bench.loopback.servers import RedisServer, free_port
from bench.loopback.silent_tls import SilentTlsHost

PLAYLISTS: Final = 100
PLC_DELAY_SECONDS: Final = 0.25  # the slow directory
START_TIMEOUT_SECONDS: Final = 120.0
GOAL_P99_RATIO: Final = 2.0
# legitimate JWT users per second, each kind: first-time (a new account each) and
# returning (a fixed few, their keys past the API's cache by each phase)
JWT_RATE: Final = 2.0
RETURNING_PEOPLE: Final = 8


class SlowDirectory(LoopbackHttpServer):
    """a PLC directory that takes a quarter second for every answer: the documents of
    the legitimate JWT users, a 404 for anyone else."""

    def __init__(self) -> None:
        self.requests = 0
        self.documents: dict[str, dict[str, object]] = {}

    def publish(self, person: Person) -> Person:
        self.documents[person.did] = person.document()
        return person

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/{did}", self._answer)

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        await asyncio.sleep(PLC_DELAY_SECONDS)
        document = self.documents.get(request.match_info["did"])
        if document is None:
            return web.json_response({"message": "DID not registered"}, status=404)
        return web.json_response(document)


@dataclass
class Phase:
    attack: Attack
    sent: int = 0
    latencies: list[float] = field(default_factory=list)  # ms, of legitimate requests
    outcomes: Counter[str] = field(default_factory=Counter)  # correct, wrong, <status>, error
    # legitimate JWT users asking for someone else's playlist: 403 is signed in
    jwt_new: Counter[str] = field(default_factory=Counter)
    jwt_returning: Counter[str] = field(default_factory=Counter)
    redis_bytes: int = 0  # used_memory growth since the start
    threads: int = 0  # the server's, at most, during the phase
    sockets: int = 0  # the server's open sockets, at most
    plc_fetches: int = 0
    dns_queries: int = 0
    # p99 of a quiet window of the same length just before: this machine's load drifts
    # between phases, so each attack is held to its own neighbour
    quiet_p99: float = 0.0

    @property
    def p99(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0


def _server_usage(pid: int) -> tuple[int, int]:
    """(threads, open sockets) of process `pid`, from /proc (Linux)."""
    threads = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("Threads:"):
                threads = int(line.split()[1])
    sockets = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            sockets += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            continue
    return threads, sockets


async def _legit(
    client: httpx.AsyncClient,
    playlists: list[BenchPlaylist],
    expected: dict[str, bytes],
    phase: Phase,
    seconds: float,
    rate: float,
) -> None:
    """owners ask at a fixed pace; latency counts from the scheduled moment."""
    start = time.monotonic()

    async def ask(n: int, due: float) -> None:
        playlist = playlists[n % len(playlists)]
        try:
            response = await client.get(
                f"/playlists/{playlist.playlist_id}/recommendations",
                headers={"x-internal-token": INTERNAL_TOKEN, "x-viewer-did": playlist.owner_did},
                timeout=10.0,
            )
        except httpx.HTTPError as error:
            phase.outcomes[f"error:{type(error).__name__}"] += 1
            return
        phase.latencies.append((time.monotonic() - due) * 1000)
        if response.status_code != 200:
            phase.outcomes[str(response.status_code)] += 1
        elif expected.setdefault(playlist.playlist_id, response.content) == response.content:
            phase.outcomes["correct"] += 1
        else:
            phase.outcomes["wrong"] += 1

    tasks = []
    for n in range(int(seconds * rate)):
        due = start + n / rate
        if (delay := due - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(ask(n, due)))
    await asyncio.gather(*tasks)


async def _legit_jwt(
    client: httpx.AsyncClient,
    path: str,
    directory: SlowDirectory,
    returning: list[Person],
    phase: Phase,
    seconds: float,
) -> None:
    """first-time and returning JWT users, `JWT_RATE` a second each, through the proxy."""
    start = time.monotonic()

    async def ask(person: Person, outcomes: Counter[str]) -> None:
        try:
            response = await client.get(path, headers=person.headers(SERVICE_DID), timeout=10.0)
        except httpx.HTTPError as error:
            outcomes[f"error:{type(error).__name__}"] += 1
            return
        outcomes["signed in" if response.status_code == 403 else str(response.status_code)] += 1

    tasks = []
    for n in range(int(seconds * JWT_RATE)):
        if (delay := start + n / JWT_RATE - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        newcomer = directory.publish(Person.new(1000 + len(directory.documents)))
        tasks.append(asyncio.create_task(ask(newcomer, phase.jwt_new)))
        tasks.append(asyncio.create_task(ask(returning[n % len(returning)], phase.jwt_returning)))
    await asyncio.gather(*tasks)


async def _traffic(
    client: httpx.AsyncClient,
    playlists: list[BenchPlaylist],
    expected: dict[str, bytes],
    directory: SlowDirectory,
    returning: list[Person],
    phase: Phase,
    seconds: float,
    rate: float,
) -> None:
    """the legitimate traffic of a phase: owners through plyr.fm's backend, JWT users."""
    path = f"/playlists/{playlists[0].playlist_id}/recommendations"
    await asyncio.gather(
        _legit(client, playlists, expected, phase, seconds, rate),
        _legit_jwt(client, path, directory, returning, phase, seconds),
    )


async def _run(
    port: int,
    pid: int,
    redis_url: str,
    plc: SlowDirectory,
    dns: LoopbackDns,
    seconds: float,
    rate: float,
) -> list[Phase]:
    playlists = bench_playlists(PLAYLISTS)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    async with httpx.AsyncClient(base_url=base, limits=httpx.Limits(max_connections=16)) as client:
        while True:
            try:
                if (await client.get("/health/live")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("the bench API did not start")
            await asyncio.sleep(0.2)
        expected: dict[str, bytes] = {}
        warm = Phase(ATTACKS[0])
        returning = [plc.publish(Person.new(n)) for n in range(RETURNING_PEOPLE)]
        # the answers to hold to, and the returning users' first sign-in
        await _traffic(
            client, playlists, expected, plc, returning, warm, RETURNING_PEOPLE / 2, rate
        )
        redis = aioredis.Redis.from_url(redis_url)
        start_bytes = int((await redis.info("memory"))["used_memory"])
        target = Target(port, redis_url, f"/playlists/{playlists[0].playlist_id}/recommendations")
        phases = []
        for attack in ATTACKS:
            neighbour = Phase(ATTACKS[0])
            await _traffic(
                client, playlists, expected, plc, returning, neighbour, seconds - 0.3, rate
            )
            phase = Phase(attack, quiet_p99=neighbour.p99)
            plc_before, dns_before = plc.requests, sum(dns.queries.values())
            done = asyncio.Event()

            async def sample(current: Phase = phase, done: asyncio.Event = done) -> None:
                while not done.is_set():
                    threads, sockets = _server_usage(pid)
                    current.threads = max(current.threads, threads)
                    current.sockets = max(current.sockets, sockets)
                    await asyncio.sleep(0.1)

            sampler = asyncio.create_task(sample())
            attacker = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.abuse.attacks",
                attack.run.__name__,
                str(target.port),
                target.redis_url,
                target.legit_path,
                str(seconds),
                stdout=asyncio.subprocess.PIPE,
            )
            assert attacker.stdout is not None
            # its start-up (imports) is not the attack: measure from its "ready"
            await asyncio.wait_for(attacker.stdout.readline(), 60)
            await asyncio.sleep(0.3)  # then let the attack take hold
            await _traffic(client, playlists, expected, plc, returning, phase, seconds - 0.3, rate)
            output, _ = await asyncio.wait_for(attacker.communicate(), seconds + 60)
            phase.sent = int(output.split()[-1]) if output.split() else 0
            done.set()
            await sampler
            phase.redis_bytes = int((await redis.info("memory"))["used_memory"]) - start_bytes
            phase.plc_fetches = plc.requests - plc_before
            phase.dns_queries = sum(dns.queries.values()) - dns_before
            phases.append(phase)
            await asyncio.sleep(1.0)  # what the attack left behind drains
        await redis.aclose()
    return phases


def main(*, seconds: float = 4.0, rate: float = 50.0) -> int:
    """the table; 1 when a legitimate answer was wrong or missing, or a p99 past 2x."""
    console = Console(width=220)
    with tempfile.TemporaryDirectory(prefix="plyr-bench-abuse-") as directory:
        redis_server = RedisServer(Path(directory) / "redis")
        redis_server.start()
        try:
            phases, port = asyncio.run(_with_stand_ins(redis_server.url, seconds, rate))
        finally:
            redis_server.stop()
    _table(console, phases, seconds, rate, port)
    failed = any(
        set(p.outcomes) != {"correct"}
        or set(p.jwt_new) | set(p.jwt_returning) != {"signed in"}
        or p.p99 > GOAL_P99_RATIO * max(p.quiet_p99, 1.0)
        for p in phases
    )
    return 1 if failed else 0


async def _with_stand_ins(redis_url: str, seconds: float, rate: float) -> tuple[list[Phase], int]:
    async with (
        SlowDirectory() as plc,
        LoopbackDns(
            {TLS_SILENT_DOMAIN: [PUBLIC_STANDIN], TLS_SILENT_SUFFIX: [PUBLIC_STANDIN]},
            silent=("silent.example",),
        ) as dns,
        SilentTlsHost() as silent_tls,
    ):
        port = free_port()
        command = [sys.executable, "-m", "bench.abuse.server", str(port), redis_url]
        args = [str(PLAYLISTS), plc.url, str(dns.port), str(silent_tls.port)]
        server = await asyncio.create_subprocess_exec(*command, *args)
        try:
            return await _run(port, server.pid, redis_url, plc, dns, seconds, rate), port
        finally:
            server.terminate()
            try:
                await asyncio.wait_for(server.wait(), 10)
            except TimeoutError:
                server.kill()
                await server.wait()


def _table(console: Console, phases: list[Phase], seconds: float, rate: float, port: int) -> None:
    table = Table(
        title=f"abuse: legitimate owners at {rate:.0f}/s for {seconds:.0f} s per attack "
        f"(API on 127.0.0.1:{port}, one process, warm cache)"
    )
    for column in (
        "attack",
        "rate",
        "sent",
        "legit ok",
        "JWT new",
        "JWT back",
        "legit p99 ms",
        "quiet p99 ms",
        "p99 / quiet",
        "Redis +MB",
        "threads",
        "sockets",
        "PLC fetches",
        "DNS queries",
    ):
        table.add_column(column, justify="left" if column in ("attack", "rate") else "right")
    for phase in phases:
        total = sum(phase.outcomes.values())
        bad = {k: v for k, v in phase.outcomes.items() if k != "correct"}
        ok = f"{phase.outcomes['correct']}/{total}" + (f" {bad}" if bad else "")
        table.add_row(
            phase.attack.name,
            phase.attack.rate,
            str(phase.sent),
            ok,
            _signed_in(phase.jwt_new),
            _signed_in(phase.jwt_returning),
            f"{phase.p99:.1f}",
            f"{phase.quiet_p99:.1f}",
            f"{phase.p99 / max(phase.quiet_p99, 1e-9):.2f}x",
            f"{phase.redis_bytes / 1e6:.1f}",
            str(phase.threads),
            str(phase.sockets),
            str(phase.plc_fetches),
            str(phase.dns_queries),
        )
    console.print(table)
    console.print(
        f"JWT new / back: first-time and returning JWT users ({JWT_RATE:g}/s each, an "
        "address each in Fly-Client-IP, returning keys past the API's 3 s key cache), asking "
        "for someone else's playlist: signed in (403) / asked. "
        "quiet p99: the same legitimate traffic in the window just before each phase. "
        "goal: every legitimate answer the quiet one, p99 within 2x of quiet; Redis bytes "
        "of pending tasks <= 4 x JETSTREAM_DID_MAX_PENDING_BYTES + 4 KiB per task for one DID "
        "(README, 'Redis bytes')."
    )


def _signed_in(outcomes: Counter[str]) -> str:
    bad = {k: v for k, v in outcomes.items() if k != "signed in"}
    return f"{outcomes['signed in']}/{sum(outcomes.values())}" + (f" {bad}" if bad else "")
