"""the reconcile pass's reads in `python -m bench abuse`'s components table (issue 23,
finding 9): a page of due playlists read through the production `PassRecords` and
`PdsRecords` (the worker's PDS client, kept across passes as a worker keeps it) from
loopback PDSes. legitimate owners' records on an honest PDS share the page with an
attacker's playlists on a slow PDS whose `listRecords` cursor never ends.
"""

from __future__ import annotations

import time
from typing import Any, Final

from aiohttp import web

from bench.abuse.component_row import ComponentRow
from bench.loopback.pds import LoopbackPds, list_record_value
from worker.identity.pds import PdsRecords
from worker.identity.pds_lists import PassRecords, WantedRecord
from worker.settings import Settings
from worker.wiring import pds_client

LEGIT_OWNERS: Final = 20
ATTACKER_PLAYLISTS: Final = 5  # past the listing threshold: read with listRecords
SLOW_SECONDS: Final = 0.4  # each page of the slow host, under the client's timeout
HOST_SECONDS: Final = 2.0  # a host's time in a page's reads, scaled (production 20 s)
TIMEOUT_SECONDS: Final = 1.0  # PDS_TIMEOUT_SECONDS, scaled (production 5 s)
LEGIT: Final = "did:plc:" + "l" * 24
ATTACKER: Final = "did:plc:" + "s" * 24
CID: Final = "bafyreic" + "c" * 51


class EndlessPds(LoopbackPds):
    """a PDS that answers every listRecords page slowly, with a record never asked for
    and a cursor to one more page, for ever (an empty page would end the listing)."""

    async def _list_records(self, request: web.Request) -> web.StreamResponse:
        self.requests["listRecords"] += 1
        await self._answer_fault()
        page = int(request.query.get("cursor", "0"))
        rkey = f"3mpage{page:07d}"
        value = list_record_value([f"at://{ATTACKER}/fm.plyr.track/{rkey}"])
        record = {"uri": f"at://{ATTACKER}/fm.plyr.list/{rkey}", "cid": CID, "value": value}
        body: dict[str, Any] = {"records": [record], "cursor": str(page + 1)}
        return web.json_response(body)


_BASE32: Final = "abcdefghijklmnopqrstuvwxyz234567"


def _legit_uri(n: int) -> str:
    """the one playlist of legitimate owner `n` (one each: read with getRecord)."""
    owner = "did:plc:" + "l" * 22 + _BASE32[n // 32 % 32] + _BASE32[n % 32]
    return f"at://{owner}/fm.plyr.list/3mlegit{n:06d}"


async def _pass(pds: PdsRecords, wanted: list[WantedRecord]) -> tuple[float, int]:
    """(seconds, legit records read) of one page's reads."""
    limits = Settings(_env_file=None)
    records = PassRecords(
        pds,
        per_host=limits.pds_max_in_flight_per_host,
        total=limits.pds_max_in_flight,
        host_seconds=HOST_SECONDS,
    )
    started = time.monotonic()
    results = await records.read(wanted)
    seconds = time.monotonic() - started
    read = sum(
        hasattr(results[item.record_uri], "track_uris")
        for item in wanted
        if item.owner_did != ATTACKER
    )
    return seconds, read


async def slow_endless_pds(redis_url: str, seconds: float) -> ComponentRow:
    record = list_record_value(
        [f"at://did:plc:{'t' * 24}/fm.plyr.track/3mtrack{n:06d}" for n in range(20)]
    )
    async with LoopbackPds() as honest, EndlessPds(latency=(SLOW_SECONDS, SLOW_SECONDS)) as slow:
        legit = []
        for n in range(LEGIT_OWNERS):
            uri = _legit_uri(n)
            honest.put(uri, CID, record)
            legit.append(WantedRecord(uri, honest.url, uri.split("/")[2]))
        hostile = [
            WantedRecord(f"at://{ATTACKER}/fm.plyr.list/3mslow{n:07d}", slow.url, ATTACKER)
            for n in range(ATTACKER_PLAYLISTS)
        ]
        # the worker's client, its timeout scaled; the PDSes are on loopback
        settings = Settings(
            _env_file=None, pds_timeout_seconds=TIMEOUT_SECONDS, pds_allow_private=True
        )
        client = pds_client(settings)
        try:
            quiet_seconds, quiet_read = await _pass(client, legit)
            first_seconds, first_read = await _pass(client, [*legit, *hostile])
            asked = sum(slow.requests.values())
            second_seconds, second_read = await _pass(client, [*legit, *hostile])
            asked_again = sum(slow.requests.values()) - asked
        finally:
            await client.aclose()
    bound = HOST_SECONDS + TIMEOUT_SECONDS
    ok = (
        quiet_read == first_read == second_read == LEGIT_OWNERS
        and first_seconds <= bound
        and asked_again == 0
    )
    return ComponentRow(
        name="slow PDS, endless cursor (reconcile reads)",
        attack=f"{ATTACKER_PLAYLISTS} lists on a PDS: {SLOW_SECONDS:g} s a page, cursor never ends",
        legit_quiet=f"{quiet_read}/{LEGIT_OWNERS} read, page {quiet_seconds:.2f} s",
        legit_attack=f"{first_read}/{LEGIT_OWNERS} read, page {first_seconds:.2f} s; "
        f"next page {second_read}/{LEGIT_OWNERS}, {second_seconds:.2f} s",
        resource=f"{asked} requests to the slow host, {asked_again} in the next page",
        bound=f"page <= {bound:g} s (host {HOST_SECONDS:g} s + timeout, scaled from 20 + 5 s); "
        "remembered slow: 0 next page",
        ok=ok,
    )
