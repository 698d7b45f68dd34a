"""runs `python -m bench abuse`: each attack after a quiet window of its own, legitimate
users asking throughout (`bench.abuse.legit`), then the components' rows
(`bench.abuse.components`), and the tables (see `bench.abuse`)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import httpx
import redis.asyncio as aioredis
from rich.console import Console

from bench.abuse import pds_world
from bench.abuse.attacks import ATTACKS, Attack, Target
from bench.abuse.components import COMPONENTS, ComponentRow
from bench.abuse.legit import Legit, SlowDirectory
from bench.abuse.phase import Phase
from bench.abuse.server import (
    PUBLIC_STANDIN,
    TLS_SILENT_DOMAIN,
    TLS_SILENT_SUFFIX,
    WEB_STANDIN,
    WEB_USERS_SUFFIX,
)
from bench.abuse.table import api_table, components_table
from bench.abuse.web_host import WebDidHost
from bench.api_server import bench_playlists
from bench.loopback.dns import LoopbackDns
from bench.loopback.pds import LoopbackPds, list_record_value
from bench.loopback.servers import RedisServer, free_port
from bench.loopback.silent_tls import SilentTlsHost

PLAYLISTS: Final = 100
START_TIMEOUT_SECONDS: Final = 120.0


def row_names() -> list[str]:
    """what `--only` accepts: each API attack's and each component row's short name."""
    return [attack.run.__name__ for attack in ATTACKS[1:]] + [row.key for row in COMPONENTS]


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


async def _redis_bytes(redis: aioredis.Redis) -> int:
    return int((await redis.info("memory"))["used_memory"])


async def _wait_for_api(client: httpx.AsyncClient, server: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        if server.returncode is not None:
            raise RuntimeError(f"the bench API exited ({server.returncode}) before it served")
        try:
            if (await client.get("/health/live")).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("the bench API did not start")
        await asyncio.sleep(0.2)


class _Run:
    """the stand-ins and the API process of one run of the API table."""

    def __init__(
        self,
        port: int,
        server: asyncio.subprocess.Process,
        redis_url: str,
        plc: SlowDirectory,
        dns: LoopbackDns,
        web: WebDidHost,
        bad_pds: Sequence[LoopbackPds],
    ) -> None:
        self.port, self.server, self.pid, self.redis_url = port, server, server.pid, redis_url
        self.plc, self.dns, self.web, self.bad_pds = plc, dns, web, bad_pds

    def _pds_requests(self) -> int:
        return sum(sum(pds.requests.values()) for pds in self.bad_pds)

    async def phases(self, attacks: Sequence[Attack], seconds: float, rate: float) -> list[Phase]:
        base = f"http://127.0.0.1:{self.port}"
        limits = httpx.Limits(max_connections=16)
        async with httpx.AsyncClient(base_url=base, limits=limits) as client:
            await _wait_for_api(client, self.server)
            legit = Legit(client, bench_playlists(PLAYLISTS), self.plc, self.web)
            # the answers to hold to, and the returning users' first sign-in
            await legit.traffic(Phase(ATTACKS[0]), 4.0, rate)
            redis = aioredis.Redis.from_url(self.redis_url)
            try:
                return [await self._phase(legit, redis, a, seconds, rate) for a in attacks]
            finally:
                await redis.aclose()

    async def _phase(
        self, legit: Legit, redis: aioredis.Redis, attack: Attack, seconds: float, rate: float
    ) -> Phase:
        neighbour = Phase(ATTACKS[0])
        await legit.traffic(neighbour, seconds - 0.3, rate)
        phase = Phase(attack, quiet_p99=neighbour.p99, seconds=seconds)
        plc_before, dns_before = self.plc.requests, sum(self.dns.queries.values())
        pds_before, redis_before = self._pds_requests(), await _redis_bytes(redis)
        done = asyncio.Event()

        async def sample() -> None:
            while not done.is_set():
                threads, sockets = _server_usage(self.pid)
                phase.threads = max(phase.threads, threads)
                phase.sockets = max(phase.sockets, sockets)
                await asyncio.sleep(0.1)

        sampler = asyncio.create_task(sample())
        path = f"/playlists/{legit.playlists[0].playlist_id}/recommendations"
        target = Target(self.port, self.redis_url, path)
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
        await legit.traffic(phase, seconds - 0.3, rate)
        output, _ = await asyncio.wait_for(attacker.communicate(), seconds + 60)
        lines = output.decode().split("\n")
        phase.notes = " ".join(line[5:] for line in lines if line.startswith("note "))
        counts = [line for line in lines if line.strip().isdigit()]
        phase.sent = int(counts[-1]) if counts else 0
        done.set()
        await sampler
        phase.redis_bytes = await _redis_bytes(redis) - redis_before
        phase.plc_fetches = self.plc.requests - plc_before
        phase.dns_queries = sum(self.dns.queries.values()) - dns_before
        phase.pds_requests = self._pds_requests() - pds_before
        await asyncio.sleep(1.0)  # what the attack left behind drains
        return phase


def _good_pds(pds: LoopbackPds) -> None:
    for n in range(pds_world.COLD_PLAYLISTS):
        playlist = pds_world.cold_playlist(n)
        pds.put(playlist.record_uri, playlist.cid, list_record_value(list(playlist.track_uris)))


def _hostile_pds(pds: LoopbackPds) -> None:
    for kind, playlist in zip(pds_world.HOSTILE_KINDS, pds_world.hostile_playlists(), strict=True):
        pds.put(playlist.record_uri, playlist.cid, pds_world.hostile_value(kind))


async def _api_table(
    directory: Path, redis_url: str, attacks: Sequence[Attack], seconds: float, rate: float
) -> tuple[list[Phase], int]:
    async with (
        SlowDirectory() as plc,
        LoopbackDns(
            {
                TLS_SILENT_DOMAIN: [PUBLIC_STANDIN],
                TLS_SILENT_SUFFIX: [PUBLIC_STANDIN],
                WEB_USERS_SUFFIX: [WEB_STANDIN],
            },
            silent=("silent.example",),
        ) as dns,
        SilentTlsHost() as silent_tls,
        WebDidHost(directory, WEB_USERS_SUFFIX) as web,
        LoopbackPds() as good,
        LoopbackPds() as hostile,
        LoopbackPds(fault="stall") as hanging,
    ):
        _good_pds(good)
        _hostile_pds(hostile)
        port = free_port()
        command = [sys.executable, "-m", "bench.abuse.server", str(port), redis_url]
        args = [str(PLAYLISTS), plc.url, str(dns.port), str(silent_tls.port), str(web.port)]
        urls = [good.url, hostile.url, hanging.url]
        # the API trusts the bench's CA for the did:web users' hosts (and only there
        # does it matter: every other fetch of that process is plain http on loopback)
        environment = {**os.environ, "SSL_CERT_FILE": str(web.ca_path)}
        server = await asyncio.create_subprocess_exec(*command, *args, *urls, env=environment)
        run = _Run(port, server, redis_url, plc, dns, web, (hostile, hanging))
        try:
            return await run.phases(attacks, seconds, rate), port
        finally:
            if server.returncode is None:
                server.terminate()
            try:
                await asyncio.wait_for(server.wait(), 10)
            except TimeoutError:
                server.kill()
                await server.wait()


async def _all(
    directory: Path, redis_url: str, only: set[str] | None, seconds: float, rate: float
) -> tuple[list[Phase], int, list[ComponentRow]]:
    chosen = [a for a in ATTACKS[1:] if only is None or a.run.__name__ in only]
    phases: list[Phase] = []
    port = 0
    if chosen:
        phases, port = await _api_table(directory, redis_url, [ATTACKS[0], *chosen], seconds, rate)
    rows = []
    for component in COMPONENTS:
        if only is None or component.key in only:
            rows.append(await component.run(redis_url, seconds))
    return phases, port, rows


def main(*, seconds: float = 4.0, rate: float = 50.0, only: set[str] | None = None) -> int:
    """the tables; 1 when a legitimate outcome was wrong or a resource out of its bound
    (the p99 beside the quiet window is shown, not judged: see `bench.abuse.phase`)."""
    # the parts run here log their refusals (each flood, each host left): the tables
    # say what happened, once
    logging.basicConfig(level=logging.ERROR)
    console = Console(width=250)
    with tempfile.TemporaryDirectory(prefix="plyr-bench-abuse-") as directory:
        redis_server = RedisServer(Path(directory) / "redis")
        redis_server.start()
        try:
            phases, port, rows = asyncio.run(
                _all(Path(directory), redis_server.url, only, seconds, rate)
            )
        finally:
            redis_server.stop()
    if phases:
        api_table(console, phases, seconds, rate, port)
    if rows:
        components_table(console, rows)
    failed = any(p.problems() for p in phases) or any(not row.ok for row in rows)
    return 1 if failed else 0
