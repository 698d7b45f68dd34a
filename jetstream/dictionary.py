"""the v2 host's zstd dictionary, fetched once per host and kept while the host accepts it.

a v2 host publishes its dictionary at `getZstdDictionary` (raw bytes, immutable
per id) and rejects a retired id at the handshake (`UnknownZstdDictionary`);
then the cached one is dropped and fetched again. a host whose dictionary
cannot be had is followed uncompressed (counted): compression saves bytes, it
is never a reason to stop reading.

the fetch has a total deadline, not only httpx's per-read one: a host that drips
a byte every 8 s never tripped a read timeout and held the consumer indefinitely
(issue 23). a host that ran out the deadline raises `DictionaryTimedOut` (the
consumer moves on to the next host) and is then followed uncompressed, without
asking again, for `SLOW_HOST_SECONDS`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable

import httpx

from jetstream.batch import FrameDecoder
from jetstream.frames import FrameLimits, decode_frame
from jetstream.frames_v2 import decode_v2_frame
from jetstream.subscription import Wire, dictionary_url
from jetstream.zstd_frames import FrameDecompressor, InvalidDictionary, load_dictionary

logger = logging.getLogger(__name__)

# a trained dictionary is tens of KiB; anything far larger is not one.
MAX_DICTIONARY_BYTES = 1024 * 1024
# a host that ran out the deadline is not asked again for this long.
SLOW_HOST_SECONDS = 300.0


class DictionaryUnavailable(Exception):
    """the host did not hand over a usable dictionary."""


class DictionaryTimedOut(DictionaryUnavailable):
    """the host did not hand its dictionary over within the deadline: leave it."""


async def fetch_decompressor(host: str, *, timeout_seconds: float) -> FrameDecompressor:
    url = dictionary_url(host)
    try:
        async with (
            asyncio.timeout(timeout_seconds),  # the whole fetch, however it trickles
            httpx.AsyncClient(timeout=timeout_seconds) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise DictionaryUnavailable(f"{url} answered {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body.extend(chunk)
                if len(body) > MAX_DICTIONARY_BYTES:
                    raise DictionaryUnavailable(f"{url} sent more than {MAX_DICTIONARY_BYTES} B")
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise DictionaryTimedOut(f"{url}: no dictionary within {timeout_seconds:g} s") from exc
    except httpx.HTTPError as exc:
        raise DictionaryUnavailable(f"{url}: {exc!r}") from exc
    try:
        return FrameDecompressor(load_dictionary(bytes(body)))
    except InvalidDictionary as exc:
        raise DictionaryUnavailable(f"{url}: {exc}") from exc


class Dictionaries:
    """per-host decompressors. a host without one is asked again on its next
    connection (it may have been restarting), counted each time by the consumer."""

    def __init__(
        self,
        *,
        enabled: bool,
        timeout_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.enabled = enabled
        self._timeout_seconds = timeout_seconds
        self._clock = clock
        self._by_host: dict[str, FrameDecompressor] = {}
        self._slow_until: dict[str, float] = {}  # host -> not asked again before

    async def for_host(self, host: str) -> FrameDecompressor | None:
        """the host's decompressor, fetched if needed; None when compression is off
        or the host has no usable dictionary (raises `DictionaryUnavailable`)."""
        if not self.enabled:
            return None
        cached = self._by_host.get(host)
        if cached is None:
            if self._clock() < self._slow_until.get(host, 0.0):
                raise DictionaryUnavailable(f"{host} was too slow with its dictionary lately")
            try:
                cached = await fetch_decompressor(host, timeout_seconds=self._timeout_seconds)
            except DictionaryTimedOut:
                self._slow_until[host] = self._clock() + SLOW_HOST_SECONDS
                raise
            self._by_host[host] = cached
            logger.info("zstd dictionary %d fetched from %s", cached.dictionary_id, host)
        return cached

    async def decoder(
        self, host: str, wire: Wire, limits: FrameLimits
    ) -> tuple[FrameDecoder, int | None, str | None]:
        """the frame decoder for a connection to `host`, the dictionary id to ask for
        (None: uncompressed), and why there is no dictionary when one was wanted.
        raises `DictionaryTimedOut` for a host that ran out the deadline."""
        if wire is Wire.V1:
            return functools.partial(decode_frame, limits=limits), None, None
        problem: str | None = None
        decompressor: FrameDecompressor | None = None
        try:
            decompressor = await self.for_host(host)
        except DictionaryTimedOut:
            raise
        except DictionaryUnavailable as exc:
            problem = str(exc)
        decode = functools.partial(decode_v2_frame, limits=limits, decompressor=decompressor)
        return decode, None if decompressor is None else decompressor.dictionary_id, problem

    def retire(self, host: str) -> None:
        """the host refused our dictionary id: fetch its current one next time."""
        self._by_host.pop(host, None)
