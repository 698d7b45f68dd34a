"""the PDS client's TLS (issue 20 moved it from httpx to aiohttp; the bounds of
issue 23 hold): a PDS that accepts TCP and never finishes the handshake costs
`CONNECT_SECONDS`, not the whole call, and leaves no socket open; a certificate no
trusted root signed is refused. real sockets and handshakes on loopback: the name
is looked up by the test, the address dialled is 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bench.abuse.web_host import WebDidHost, web_host
from bench.loopback.silent_tls import SilentTlsHost
from jetstream.records import RecordLimits
from tests.support.jetstream_world import did, eventually
from worker.identity.pds import CONNECT_SECONDS, PdsRecords, RecordUnavailable

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

RECORD_URI = f"at://{did(1)}/fm.plyr.list/3m64hnzv42222"


async def loopback(host: str) -> list[str]:
    return ["127.0.0.1"]


def client(deadline: float) -> PdsRecords:
    # `allow_private` only so that the lookup's 127.0.0.1 may be dialled; https and
    # the certificate check are as in production
    return PdsRecords(
        limits=RecordLimits(),
        list_collection="fm.plyr.list",
        timeout_seconds=deadline,
        host_addresses=loopback,
        allow_private=True,
    )


@pytest.fixture
async def silent() -> AsyncIterator[SilentTlsHost]:
    async with SilentTlsHost() as host:
        yield host


async def test_a_silent_handshake_ends_at_its_own_bound_and_closes(
    silent: SilentTlsHost,
) -> None:
    records = client(deadline=CONNECT_SECONDS * 10)
    started = time.monotonic()
    try:
        with pytest.raises(RecordUnavailable, match="timeout"):
            await records.fetch(f"https://pds.silent.example:{silent.port}", RECORD_URI)
        took = time.monotonic() - started
        assert silent.accepted == 1
        # its own bound, not the call's (10 x); generous either side for a busy machine
        assert CONNECT_SECONDS * 0.9 <= took < CONNECT_SECONDS * 5
        await eventually(lambda: silent.open == 0, within=5.0, what="the socket closed")
    finally:
        await records.aclose()


async def test_handshakes_cut_by_the_deadline_leave_no_socket_open(
    silent: SilentTlsHost,
) -> None:
    records = client(deadline=CONNECT_SECONDS / 3)  # the call's deadline fires first
    try:
        results = await asyncio.gather(
            *(
                records.fetch(f"https://pds{n}.silent.example:{silent.port}", RECORD_URI)
                for n in range(3)
            ),
            return_exceptions=True,
        )
        assert all(isinstance(r, RecordUnavailable) and r.reason == "timeout" for r in results)
        assert silent.accepted == 3
        await eventually(lambda: silent.open == 0, within=5.0, what="the sockets closed")
    finally:
        await records.aclose()


async def test_a_certificate_no_trusted_root_signed_is_refused(tmp_path: Path) -> None:
    """the host's certificate names the host, but its CA is the test's own: not one
    of the roots the client trusts."""
    host = WebDidHost(tmp_path, "pds-tls.example")
    async with host:
        records = client(deadline=5.0)
        try:
            with pytest.raises(RecordUnavailable, match="unreachable") as refused:
                await records.fetch(f"https://{web_host(0, host.suffix)}:{host.port}", RECORD_URI)
        finally:
            await records.aclose()
    assert isinstance(refused.value.__cause__, aiohttp.ClientConnectorCertificateError)
    assert host.requests == 0
