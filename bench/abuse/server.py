"""the API process of `python -m bench abuse`: the bench API (bench.api_server's
world and warm cache) with its identity lookups pointed at loopback stand-ins.

    python -m bench.abuse.server PORT REDIS_URL PLAYLISTS PLC_URL DNS_PORT TLS_PORT

did:web hosts the DNS stand-in places at `PUBLIC_STANDIN` are dialled at TLS_PORT
on loopback (`bench.loopback.silent_tls`): a host that never finishes TLS.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Final

from pydantic import SecretStr

# a public address (the resolver refuses private ones) that no packet is sent to
PUBLIC_STANDIN: Final = "93.184.216.34"
TLS_SILENT_DOMAIN: Final = "tls-silent.example"
# a public suffix: each name under it is a registrable domain of its own
TLS_SILENT_SUFFIX: Final = "co.uk"


async def serve(
    port: int, redis_url: str, count: int, plc_url: str, dns_port: int, tls_port: int
) -> None:
    import uvicorn

    from bench.api_server import INTERNAL_TOKEN, bench_playlists, bench_world, warm_cache
    from bench.loopback.silent_tls import Rerouted
    from worker.api.app import create_app, freeze_startup_heap, server_config
    from worker.identity.auth import Authenticator
    from worker.identity.did_resolver import CachedDidResolver
    from worker.identity.host_lookup import DnsLookup
    from worker.recs.services import open_services
    from worker.settings import Settings

    playlists = bench_playlists(count)
    catalog, store = bench_world(playlists)
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
    )
    # the production resolver, but its names go to the loopback name server
    lookup = DnsLookup(nameservers=["127.0.0.1"], port=dns_port)
    resolver = CachedDidResolver(
        plc_directory_url=plc_url,
        timeout_seconds=settings.did_resolve_timeout_seconds,
        cache_seconds=settings.did_cache_seconds,
        host_addresses=lookup,
        network=Rerouted(tls_port, address=PUBLIC_STANDIN),
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
    port, redis_url, count, plc_url, dns_port, tls_port = sys.argv[1:7]
    with asyncio.Runner(loop_factory=auto_loop_factory()) as runner:
        runner.run(serve(int(port), redis_url, int(count), plc_url, int(dns_port), int(tls_port)))
