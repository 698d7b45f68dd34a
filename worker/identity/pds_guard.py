"""where the PDS client may go: https, public addresses, the host it was sent to.

the PDS URL comes from plyr.fm's database, which takes it from the owner's DID
document: anyone can make it point anywhere. the SDK's client followed up to 3
redirects to any host, private ones included, and took the body as the record
(a blind SSRF, issue 16). so every request is checked before it leaves:

- https only (`allow_private` lifts this and the address checks: loopback tests,
  the embedded demo), checked by `checked_target` before the request is made;
- a host given as an address must be public (`checked_target`: aiohttp dials an
  address as it is, without asking the resolver);
- a host given as a name is looked up by `PinnedResolver`, the client's only
  resolver: through c-ares (`worker.identity.host_lookup`), every address public
  (the rule did:web hosts follow), and those very addresses are what the connection
  dials, with the name in the Host header and as the TLS server name and the name
  the certificate must match. there is no second lookup for a rebinding answer to
  slip in (aiohttp's own cache of answers is off);
- no redirects: a 3xx is refused as it is, never followed (`PdsRecords`).
"""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult

from worker.identity.did_resolver import public_addresses
from worker.identity.host_lookup import HostLookup


class PdsRefused(Exception):
    """the request was not sent, or its answer not taken: `reason` is a short fixed word."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def checked_target(scheme: str, host: str, *, allow_private: bool) -> None:
    """refuse a URL (its scheme, its host) the client must not dial: not https, or an
    address that is not public."""
    if allow_private:
        return
    if scheme != "https":
        raise PdsRefused("not_https")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return  # a name: `PinnedResolver` checks what it stands for
    if not public_addresses([host]):
        raise PdsRefused("private_address")


class PinnedResolver(AbstractResolver):
    """the PDS client's resolver: a name's addresses from `lookup`, refused unless all
    are public (`allow_private`: taken as they are)."""

    def __init__(self, lookup: HostLookup, *, allow_private: bool = False) -> None:
        self._lookup = lookup
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            addresses = await self._lookup(host)
        except OSError as error:
            raise PdsRefused("no_address") from error
        if not self._allow_private and not public_addresses(addresses):
            raise PdsRefused("private_address")  # none at all included: nothing to dial
        if not addresses:
            raise PdsRefused("no_address")
        results: list[ResolveResult] = []
        for address in addresses:
            try:
                version = ipaddress.ip_address(address).version
            except ValueError as error:  # a lookup answers addresses, or it is broken
                raise PdsRefused("no_address") from error
            results.append(
                {
                    "hostname": host,  # the TLS server name and the certificate's
                    "host": address,  # what is dialled
                    "port": port,
                    "family": socket.AF_INET6 if version == 6 else socket.AF_INET,
                    "proto": 0,
                    "flags": socket.AI_NUMERICHOST,
                }
            )
        return results

    async def close(self) -> None:
        return None  # the lookup belongs to the client, which closes it
