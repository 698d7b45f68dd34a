"""Redis commands packed by hiredis, in C, as redis-py's synchronous client packs them.

redis-py 8.1's asyncio connection packs every command in Python
(`Connection.pack_command`): about 1.3 µs of CPU an argument on this machine, so the
cache write's script, with its ~130 keys and arguments (a carriers key per track),
cost ~170 µs to pack, and every recompute sends one. hiredis, installed for its
reply parser (`redis[hiredis]`), packs the same bytes in ~30 µs. redis-py's
synchronous client does so whenever hiredis is installed (`HiredisRespSerializer`);
the asyncio client has no such switch, so `connect_redis` swaps the connection
class its pool picked for the URL for the subclass below that packs as the
synchronous client does. `tests/test_redis_packing.py` holds them to the bytes redis-py's own
packing gives.
"""

from __future__ import annotations

from typing import Any

import hiredis
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    ConnectionPool,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.exceptions import DataError


def pack_command(*args: Any) -> list[bytes]:
    """one command in RESP, as redis-py's `HiredisRespSerializer.pack` packs it: a
    command name holding spaces split into words, buffers as bytes, and a value of a
    type Redis has no encoding for (None, a bool, a dict) a `DataError`."""
    head = args[0]
    if isinstance(head, str):
        args = (*head.encode().split(), *args[1:])
    elif b" " in head:
        args = (*head.split(), *args[1:])
    args = tuple(bytes(arg) if isinstance(arg, (bytearray, memoryview)) else arg for arg in args)
    try:
        return [hiredis.pack_command(args)]
    except TypeError as error:
        raise DataError(str(error)) from error


class _PackedByHiredis:
    """put first among a connection class's bases: its commands packed by hiredis."""

    def pack_command(self, *args: Any) -> list[bytes]:
        return pack_command(*args)


class HiredisConnection(_PackedByHiredis, Connection):
    pass


class HiredisSSLConnection(_PackedByHiredis, SSLConnection):
    pass


class HiredisUnixConnection(_PackedByHiredis, UnixDomainSocketConnection):
    pass


_PACKED_BY_HIREDIS: dict[type[AbstractConnection], type[AbstractConnection]] = {
    Connection: HiredisConnection,
    SSLConnection: HiredisSSLConnection,
    UnixDomainSocketConnection: HiredisUnixConnection,
}


def pack_with_hiredis(pool: ConnectionPool) -> None:
    """have `pool`'s connections pack with hiredis: the class redis-py picked from its
    URL's scheme (a `rediss://` or `unix://` URL's choice wins over any given to
    `from_url`), swapped for its subclass here before the pool opens a connection. a
    class this module does not know is left as it is."""
    if pool.connection_class in _PACKED_BY_HIREDIS:
        pool.connection_class = _PACKED_BY_HIREDIS[pool.connection_class]
