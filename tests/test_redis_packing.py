"""commands packed by hiredis (`worker.store.redis_packing`): the bytes redis-py's own
packing gives, the same refusals, and the client `connect_redis` opens packing so
against a real redis-server."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from bench.loopback.servers import RedisServer
from worker.store.redis_packing import (
    HiredisConnection,
    HiredisSSLConnection,
    HiredisUnixConnection,
    pack_command,
)
from worker.wiring import connect_redis

PYTHON_PACKING = Connection()  # redis-py's asyncio packing, in Python: the reference

values = st.one_of(
    st.text(),
    st.binary(),
    st.integers(),
    st.floats(allow_nan=False),
    st.binary().map(memoryview),
    st.binary().map(bytearray),
)
names = st.sampled_from(["SET", "EVALSHA", "CONFIG GET", b"CLIENT SETNAME", b"ZADD"])


@given(name=names, args=st.lists(values, max_size=200))
def test_the_bytes_are_redis_pys_own(name: str | bytes, args: list[object]) -> None:
    ours = b"".join(pack_command(name, *args))
    theirs = b"".join(PYTHON_PACKING.pack_command(name, *args))
    assert ours == theirs


@pytest.mark.parametrize("value", [None, True, {"a": 1}, [1]])
def test_a_value_redis_has_no_encoding_for_is_a_data_error(value: object) -> None:
    with pytest.raises(DataError):
        PYTHON_PACKING.pack_command("SET", "k", value)
    with pytest.raises(DataError):
        pack_command("SET", "k", value)


@pytest.mark.parametrize(
    ("url", "packed"),
    [
        ("redis://localhost:6379/0", HiredisConnection),
        ("rediss://localhost:6380/0", HiredisSSLConnection),
        ("unix:///run/redis.sock", HiredisUnixConnection),
    ],
)
def test_each_url_keeps_the_class_redis_py_picks_for_it_packing_with_hiredis(
    url: str, packed: type[Connection]
) -> None:
    picked = aioredis.Redis.from_url(url).connection_pool.connection_class
    assert issubclass(packed, picked)
    assert connect_redis(url).connection_pool.connection_class is packed


@pytest.mark.integration
async def test_the_client_connect_redis_opens_packs_with_hiredis_against_redis_server(
    redis_client: aioredis.Redis, redis_server: RedisServer
) -> None:
    client = connect_redis(redis_server.url)
    try:
        assert client.connection_pool.connection_class is HiredisConnection
        value = "é" * 3000  # past redis-py's own 6,000-byte chunking of a command
        await client.set("plyr:test:packed", value, ex=60)
        assert (await redis_client.get("plyr:test:packed")).decode() == value
        async with client.pipeline(transaction=True) as pipe:
            pipe.zadd("plyr:test:zset", {"member": 1764800000.123456})
            pipe.zscore("plyr:test:zset", "member")
            _, score = await pipe.execute()
        assert score == 1764800000.123456
        keys = [f"plyr:test:k{i}" for i in range(80)]
        echoed = await client.eval("return {#KEYS, #ARGV}", len(keys), *keys, *range(50))
        assert echoed == [80, 50]
    finally:
        await client.aclose()
        await redis_client.delete("plyr:test:packed", "plyr:test:zset")
