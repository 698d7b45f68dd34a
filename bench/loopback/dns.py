"""a DNS server on 127.0.0.1 (UDP), to test name lookups offline.

it answers A queries for names under the suffixes it was given with their
addresses, AAAA queries with no records, anything else with NXDOMAIN, and never
answers names under a `silent` suffix: a name server that swallows queries, the
way an attacker's authoritative server can, so a lookup waits for its timeout.
every query is counted by name (the benchmarks and tests read `queries`).
"""

from __future__ import annotations

import asyncio
import struct
from collections import Counter
from typing import Self

_A, _AAAA = 1, 28
_NOERROR, _NXDOMAIN, _FORMERR = 0, 3, 1


def _question(packet: bytes) -> tuple[str, int, int] | None:
    """(name, qtype, end offset) of the first question, or None if malformed."""
    offset, labels = 12, list[str]()
    while offset < len(packet):
        length = packet[offset]
        offset += 1
        if length == 0:
            if offset + 4 > len(packet):
                return None
            (qtype,) = struct.unpack_from("!H", packet, offset)
            return ".".join(labels).lower(), qtype, offset + 4
        if length > 63 or offset + length > len(packet):
            return None
        labels.append(packet[offset : offset + length].decode("ascii", "replace"))
        offset += length
    return None


class LoopbackDns(asyncio.DatagramProtocol):
    """`answers`: name suffix -> IPv4 addresses; `silent`: suffixes never answered."""

    def __init__(
        self, answers: dict[str, list[str]] | None = None, silent: tuple[str, ...] = ()
    ) -> None:
        self.answers = dict(answers or {})
        self.silent = silent
        self.queries: Counter[str] = Counter()
        self.port = 0
        self._transport: asyncio.DatagramTransport | None = None

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=("127.0.0.1", 0)
        )
        self._transport = transport
        self.port = int(transport.get_extra_info("sockname")[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._transport is not None:
            self._transport.close()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 12 or self._transport is None:
            return
        question = _question(data)
        if question is None:
            self._transport.sendto(self._reply(data, _FORMERR, b"", 0, b""), addr)
            return
        name, qtype, end = question
        self.queries[name] += 1
        if any(name == s or name.endswith("." + s) for s in self.silent):
            return
        addresses = next(
            (v for s, v in self.answers.items() if name == s or name.endswith("." + s)), None
        )
        if addresses is None:
            self._transport.sendto(self._reply(data, _NXDOMAIN, data[12:end], 0, b""), addr)
            return
        records = b""
        count = 0
        if qtype == _A:
            for address in addresses:
                rdata = bytes(int(part) for part in address.split("."))
                # a pointer to the question's name (offset 12), type A, class IN, TTL 60
                records += struct.pack("!HHHIH", 0xC00C, _A, 1, 60, 4) + rdata
                count += 1
        self._transport.sendto(self._reply(data, _NOERROR, data[12:end], count, records), addr)

    @staticmethod
    def _reply(query: bytes, rcode: int, question: bytes, answers: int, records: bytes) -> bytes:
        (ident,) = struct.unpack_from("!H", query, 0)
        flags = 0x8180 | rcode  # a response, recursion desired and available
        header = struct.pack("!HHHHHH", ident, flags, 1 if question else 0, answers, 0, 0)
        return header + question + records
