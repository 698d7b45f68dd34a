"""where the PDS client may go: https, public addresses, the host it was sent to.

the PDS URL comes from plyr.fm's database, which takes it from the owner's DID
document: anyone can make it point anywhere. the SDK's client followed up to 3
redirects to any host, private ones included, and took the body as the record
(a blind SSRF, issue 16). this transport, under the size bound, checks every
request before it leaves:

- https only (`allow_private` lifts this and the address check: loopback tests);
- the host's addresses looked up through c-ares (`worker.identity.host_lookup`),
  all of them public (the rule did:web hosts follow), then the request dialled
  to the address just checked, with the name in the Host header and as the TLS
  server name, so there is no second lookup for a rebinding answer to slip in;
- no redirects: a 3xx is refused as it is, never followed.
"""

from __future__ import annotations

import ipaddress

import httpx

from worker.identity.did_resolver import public_addresses
from worker.identity.host_lookup import HostLookup


class PdsRefused(Exception):
    """the request was not sent, or its answer not taken: `reason` is a short fixed word."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class GuardedTransport(httpx.AsyncBaseTransport):
    """the checks above, around the real transport."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        *,
        host_addresses: HostLookup,
        allow_private: bool = False,
    ) -> None:
        self._inner = inner
        self._host_addresses = host_addresses
        self._allow_private = allow_private

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self._allow_private:
            request = await self._pinned(request)
        response = await self._inner.handle_async_request(request)
        if 300 <= response.status_code < 400:
            await response.aclose()
            raise PdsRefused("redirect")
        return response

    async def _pinned(self, request: httpx.Request) -> httpx.Request:
        url = request.url
        if url.scheme != "https":
            raise PdsRefused("not_https")
        host = url.host
        try:
            ipaddress.ip_address(host)
            addresses = [host]
        except ValueError:
            try:
                addresses = await self._host_addresses(host)
            except OSError as error:
                raise PdsRefused("no_address") from error
        if not public_addresses(addresses):
            raise PdsRefused("private_address")
        address = addresses[0]
        request.url = url.copy_with(host=address)
        request.headers["host"] = url.netloc.decode("ascii")
        request.extensions = {**request.extensions, "sni_hostname": host}
        return request

    async def aclose(self) -> None:
        await self._inner.aclose()
