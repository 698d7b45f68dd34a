"""the API process of `python -m bench abuse`: the bench API (bench.api_server's
world and warm cache) with its identity lookups pointed at loopback stand-ins.

    python -m bench.abuse.server PORT REDIS_URL PLAYLISTS PLC_URL DNS_PORT TLS_PORT \
        WEB_PORT GOOD_PDS HOSTILE_PDS HANGING_PDS

did:web hosts the DNS stand-in places at `PUBLIC_STANDIN` are dialled at TLS_PORT
on loopback (`bench.loopback.silent_tls`): a host that never finishes TLS; those at
`WEB_STANDIN` at WEB_PORT: the legitimate did:web users' host, real TLS with a
certificate the process trusts through `SSL_CERT_FILE` (set by the report: the
resolver's verified TLS is untouched, only its trust store names the bench's CA).
the owners' PDSes (`bench.abuse.pds_world`) are loopback servers of the report's,
reached as production reaches a PDS but with `PDS_ALLOW_PRIVATE`.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TYPE_CHECKING, Final

from pydantic import SecretStr

if TYPE_CHECKING:
    from engine.memory_catalog import InMemoryCatalog

# a public address (the resolver refuses private ones) that no packet is sent to
PUBLIC_STANDIN: Final = "93.184.216.34"
TLS_SILENT_DOMAIN: Final = "tls-silent.example"
# a public suffix: each name under it is a registrable domain of its own
TLS_SILENT_SUFFIX: Final = "co.uk"
# the legitimate did:web users: each a registrable domain of its own under `.test`
WEB_STANDIN: Final = "93.184.216.35"
WEB_USERS_SUFFIX: Final = "test"


def add_pds_accounts(catalog: InMemoryCatalog, good: str, hostile: str, hanging: str) -> None:
    """the cold, hostile and hanging owners and their playlists (`bench.abuse.pds_world`)."""
    from datetime import UTC, datetime

    from bench.abuse import pds_world
    from engine.eligibility import ArtistRecord
    from engine.types import PlaylistRow

    groups = (
        (good, [pds_world.cold_playlist(n) for n in range(pds_world.COLD_PLAYLISTS)]),
        (hostile, pds_world.hostile_playlists()),
        (hanging, [pds_world.hanging_playlist(n) for n in range(pds_world.HANGING_PLAYLISTS)]),
    )
    for pds_url, playlists in groups:
        for owner in {p.owner_did for p in playlists}:
            catalog.replace_artist(
                ArtistRecord(
                    did=owner, handle=f"{owner[8:16]}.test", display_name="owner", pds_url=pds_url
                )
            )
        for p in playlists:
            catalog.upsert_playlist(
                PlaylistRow(
                    playlist_id=p.playlist_id,
                    owner_did=p.owner_did,
                    record_uri=p.record_uri,
                    record_cid=p.cid,
                    is_private=False,
                    updated_at=datetime(2026, 1, 1, tzinfo=UTC),
                    items=None,
                )
            )


async def serve(
    port: int,
    redis_url: str,
    count: int,
    plc_url: str,
    dns_port: int,
    tls_port: int,
    web_port: int,
    pds_urls: tuple[str, str, str],
) -> None:
    import uvicorn

    from bench.api_server import INTERNAL_TOKEN, bench_playlists, bench_world, warm_cache
    from bench.loopback.silent_tls import Routes
    from worker.api.app import create_app, server_config
    from worker.identity.auth import Authenticator
    from worker.identity.did_resolver import CachedDidResolver
    from worker.identity.host_lookup import DnsLookup
    from worker.ops.heap import freeze_startup_heap
    from worker.recs.services import open_services
    from worker.settings import Settings

    playlists = bench_playlists(count)
    catalog, store = bench_world(playlists)
    add_pds_accounts(catalog, *pds_urls)
    settings = Settings(
        _env_file=None,
        redis_url=redis_url,
        internal_api_token=SecretStr(INTERNAL_TOKEN),
        plc_directory_url=plc_url,
        # behind "Fly's proxy": the JWT users' addresses come in Fly-Client-IP, trusted
        # from loopback (an attacker not sending it is the one client 127.0.0.1)
        api_client_ip_header="Fly-Client-IP",
        api_trusted_proxies=("127.0.0.1",),
        # returning JWT users' keys are past the cache by each phase (production: 600 s)
        did_cache_seconds=3.0,
        # the owners' PDSes are loopback stand-ins (plain http, 127.0.0.1)
        pds_allow_private=True,
    )
    # the production resolver, but its names go to the loopback name server
    lookup = DnsLookup(nameservers=["127.0.0.1"], port=dns_port)
    resolver = CachedDidResolver(
        plc_directory_url=plc_url,
        timeout_seconds=settings.did_resolve_timeout_seconds,
        cache_seconds=settings.did_cache_seconds,
        host_addresses=lookup,
        network=Routes({PUBLIC_STANDIN: tls_port, WEB_STANDIN: web_port}),
    )
    async with open_services(settings, catalog=catalog, store=store) as services:
        await warm_cache(services, playlists)
        authenticator = Authenticator.from_settings(settings, resolver=resolver)
        app = create_app(services, authenticator)
        config = server_config(app, host="127.0.0.1", port=port)
        logging.getLogger("uvicorn.error").setLevel(logging.ERROR)
        freeze_startup_heap()
        try:
            await uvicorn.Server(config).serve()
        finally:
            await authenticator.aclose()
            await lookup.aclose()


if __name__ == "__main__":
    from uvicorn.loops.auto import auto_loop_factory

    logging.basicConfig(level=logging.ERROR)
    port, redis_url, count, plc_url, dns_port, tls_port, web_port = sys.argv[1:8]
    good, hostile, hanging = sys.argv[8:11]
    with asyncio.Runner(loop_factory=auto_loop_factory()) as runner:
        runner.run(
            serve(
                int(port),
                redis_url,
                int(count),
                plc_url,
                int(dns_port),
                int(tls_port),
                int(web_port),
                (good, hostile, hanging),
            )
        )
