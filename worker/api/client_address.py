"""who the client is, for per-client budgets: the peer, or what a trusted proxy says.

behind Fly's proxy every connection comes from the proxy, so a budget keyed by the
peer address was one budget for everyone: one attacker at 7 bogus tokens a second
locked most first-time JWT users out (issue 23). the proxy names the client in a
header of its own (`Fly-Client-IP`), which anyone else can send too; so the header
is believed only on a connection from an address configured as a proxy
(`API_TRUSTED_PROXIES`), and `X-Forwarded-For` is never read (uvicorn's own
handling of it is switched off in `server_config`: it trusted loopback, where a
forged header made every request a new client).

an IPv6 client is keyed by its /64: one host is usually handed a whole /64, and
keying by the full address would give it 2^64 budgets.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Final

IPV6_CLIENT_PREFIX: Final = 64

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """addresses or CIDR networks; a bad entry is a ValueError (refused at start-up)."""
    return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values)


class ClientAddresses:
    """`client_of(peer, headers)` -> the key a client's budgets are kept under."""

    def __init__(self, *, header: str | None = None, trusted_proxies: Iterable[str] = ()) -> None:
        self.header = header.lower() if header else None
        self.trusted_proxies = parse_networks(trusted_proxies)

    def client_of(self, peer: str | None, headers: Mapping[str, str]) -> str | None:
        if peer is None:
            return None
        if self.header is not None and self._trusted(peer):
            named = self._named_client(headers)
            if named is not None:
                return named
        return _budget_key(peer)

    def _trusted(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:  # a unix socket's path, say: no proxy of ours
            return False
        return any(address in network for network in self.trusted_proxies)

    def _named_client(self, headers: Mapping[str, str]) -> str | None:
        # every raw pair (Starlette's `items()`): a repeated header is not believed,
        # since our proxy sends it once and anything else means someone added one.
        values = [value for key, value in headers.items() if key.lower() == self.header]
        if len(values) != 1:
            return None
        try:
            ipaddress.ip_address(values[0].strip())
        except ValueError:
            return None
        return _budget_key(values[0].strip())


def _budget_key(address: str) -> str:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{parsed}/{IPV6_CLIENT_PREFIX}", strict=False))
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(parsed)
