"""the legitimate traffic of each phase of `python -m bench abuse`'s API table.

- owners ask for their (cached) playlists at a fixed rate through plyr.fm's backend's
  way in (the internal token); latency counts from the scheduled moment; correct is a
  cache hit with the body of the first hit for that playlist (the warm-up's, as a
  rule: an answer computed while the machine stalled is not held up as the reference);
- first-time and returning JWT users, did:plc (the slow directory) and did:web (their
  own hosts, real TLS), each through "Fly's proxy" with an address of their own,
  asking for someone else's playlist: a 403 is signed in;
- owners whose playlist is not cached yet (the moment after "+"): one a second, each
  a playlist never asked before, read from the owner's PDS and computed inline.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
from aiohttp import web

from bench.abuse.attacks import SERVICE_DID
from bench.abuse.pds_world import COLD_PLAYLISTS, cold_playlist
from bench.abuse.people import Person
from bench.abuse.phase import Phase
from bench.abuse.web_host import WebDidHost
from bench.api_server import INTERNAL_TOKEN, BenchPlaylist
from bench.loopback.http import LoopbackHttpServer
from worker.api.app import SOURCE_HEADER

PLC_DELAY_SECONDS: Final = 0.25  # the slow directory
# legitimate JWT users per second, each kind: first-time (a new account each) and
# returning (a fixed few, their keys past the API's cache by each phase)
JWT_RATE: Final = 2.0
RETURNING_PEOPLE: Final = 8
MISS_RATE: Final = 1.0  # legitimate misses a second
HIT: Final = "hit"  # the source of an answer read from the cache
TIMEOUT_SECONDS: Final = 10.0


class SlowDirectory(LoopbackHttpServer):
    """a PLC directory that takes a quarter second for every answer: the documents of
    the legitimate JWT users, a 404 for anyone else."""

    def __init__(self) -> None:
        self.requests = 0
        self.documents: dict[str, dict[str, object]] = {}

    def publish(self, person: Person) -> Person:
        self.documents[person.did] = person.document()
        return person

    def new_person(self, address_number: int) -> Person:
        return self.publish(Person.new(address_number))

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
class Legit:
    """who the legitimate users are, across the run."""

    client: httpx.AsyncClient
    playlists: list[BenchPlaylist]
    plc: SlowDirectory
    web_host: WebDidHost
    expected: dict[str, bytes] = field(default_factory=dict)  # the quiet answers
    returning: list[Person] = field(default_factory=list)
    returning_web: list[Person] = field(default_factory=list)
    next_cold: int = 0
    people: int = 1000  # address numbers handed out

    def __post_init__(self) -> None:
        self.returning = [self.plc.new_person(n) for n in range(RETURNING_PEOPLE)]
        self.returning_web = [
            self.web_host.new_person(RETURNING_PEOPLE + n) for n in range(RETURNING_PEOPLE)
        ]

    async def traffic(self, phase: Phase, seconds: float, rate: float) -> None:
        """the legitimate traffic of a phase."""
        path = f"/playlists/{self.playlists[0].playlist_id}/recommendations"
        await asyncio.gather(
            self._owners(phase, seconds, rate),
            self._jwt(path, self.plc.new_person, self.returning, phase, seconds, web=False),
            self._jwt(path, self.web_host.new_person, self.returning_web, phase, seconds, web=True),
            self._misses(phase, seconds),
        )

    async def _as_owner(self, playlist_id: str, owner_did: str) -> httpx.Response:
        """the owner's request for its playlist's recommendations (internal token)."""
        return await self.client.get(
            f"/playlists/{playlist_id}/recommendations",
            headers={"x-internal-token": INTERNAL_TOKEN, "x-viewer-did": owner_did},
            timeout=TIMEOUT_SECONDS,
        )

    async def _owners(self, phase: Phase, seconds: float, rate: float) -> None:
        async def ask(n: int, due: float) -> None:
            playlist = self.playlists[n % len(self.playlists)]
            try:
                response = await self._as_owner(playlist.playlist_id, playlist.owner_did)
            except httpx.HTTPError as error:
                phase.outcomes[f"error:{type(error).__name__}"] += 1
                return
            phase.latencies.append((time.monotonic() - due) * 1000)
            content = response.content
            source = response.headers.get(SOURCE_HEADER, "")
            if response.status_code != 200:
                phase.outcomes[str(response.status_code)] += 1
            elif source != HIT:
                # a warm playlist answered otherwise than from its entry (computed, busy...)
                phase.outcomes[source or "no source"] += 1
            elif self.expected.setdefault(playlist.playlist_id, content) == content:
                phase.outcomes["correct"] += 1
            else:
                phase.outcomes["wrong"] += 1

        await _paced(seconds, rate, ask)

    async def _jwt(
        self,
        path: str,
        newcomer: Callable[[int], Person],
        returning: list[Person],
        phase: Phase,
        seconds: float,
        *,
        web: bool,
    ) -> None:
        """first-time and returning JWT users, `JWT_RATE` a second each."""
        new, back = (
            (phase.web_new, phase.web_returning) if web else (phase.jwt_new, phase.jwt_returning)
        )

        async def sign_in(person: Person, outcomes: Counter[str]) -> None:
            try:
                response = await self.client.get(
                    path, headers=person.headers(SERVICE_DID), timeout=TIMEOUT_SECONDS
                )
            except httpx.HTTPError as error:
                outcomes[f"error:{type(error).__name__}"] += 1
                return
            status = response.status_code
            outcomes["signed in" if status == 403 else str(status)] += 1

        async def ask(n: int, due: float) -> None:
            self.people += 1
            await asyncio.gather(
                sign_in(newcomer(self.people), new),
                sign_in(returning[n % len(returning)], back),
            )

        await _paced(seconds, JWT_RATE, ask)

    async def _misses(self, phase: Phase, seconds: float) -> None:
        async def ask(n: int, due: float) -> None:
            playlist = cold_playlist(self.next_cold % COLD_PLAYLISTS)
            self.next_cold += 1
            try:
                response = await self._as_owner(playlist.playlist_id, playlist.owner_did)
            except httpx.HTTPError as error:
                phase.misses[f"error:{type(error).__name__}"] += 1
                return
            phase.miss_latencies.append((time.monotonic() - due) * 1000)
            phase.misses[response.headers.get(SOURCE_HEADER, str(response.status_code))] += 1

        await _paced(seconds, MISS_RATE, ask)


async def _paced(
    seconds: float, rate: float, ask: Callable[[int, float], Coroutine[Any, Any, None]]
) -> None:
    """`ask(n, due)` at a fixed pace, each in a task of its own, all awaited; at least
    once, so that a short window still judges every kind of legitimate user."""
    start = time.monotonic()
    tasks = []
    for n in range(max(1, int(seconds * rate))):
        due = start + n / rate
        if (delay := due - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(ask(n, due)))
    await asyncio.gather(*tasks)
