"""dictionary zstd for the v2 wire: each binary frame is one zstd frame of a JSON frame.

Jetstream v2's only compression is zstd with a dictionary the host publishes
(`network.bsky.jetstream.getZstdDictionary`, fetched by `jetstream.dictionary`)
and names by its zstd dictionary id; the client opts in with
`?zstdDictionary=<id>`. frames are small (a few hundred bytes) and alike, so a
trained dictionary is what makes compressing them one by one pay.

decompression is bounded like any untrusted input: a frame that declares more
than `max_frame_bytes`, or inflates past it, is rejected (a zstd bomb would
otherwise cost memory before the decoder's size check ever ran).
"""

from __future__ import annotations

from collections.abc import Sequence

import zstandard

from jetstream.events import InvalidReason

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class InvalidDictionary(ValueError):
    """bytes that are not a zstd dictionary with an id (a raw-content one has id 0)."""


def is_zstd_frame(frame: bytes) -> bool:
    return frame[:4] == ZSTD_MAGIC


def load_dictionary(data: bytes) -> zstandard.ZstdCompressionDict:
    """a structured dictionary (RFC 8878 §5) from its bytes; `InvalidDictionary` else."""
    if not data.startswith(b"\x37\xa4\x30\xec"):  # the dictionary magic, little-endian
        raise InvalidDictionary("not a zstd dictionary (bad magic)")
    dictionary = zstandard.ZstdCompressionDict(data)
    if dictionary.dict_id() == 0:
        raise InvalidDictionary("a zstd dictionary without an id")
    return dictionary


class FrameDecompressor:
    """inflates frames compressed with one dictionary."""

    def __init__(self, dictionary: zstandard.ZstdCompressionDict) -> None:
        self.dictionary_id = dictionary.dict_id()
        self._decompressor = zstandard.ZstdDecompressor(dict_data=dictionary)

    def decompress(self, frame: bytes, max_bytes: int) -> bytes | InvalidReason:
        try:
            declared = zstandard.frame_content_size(frame)
        except zstandard.ZstdError:
            return InvalidReason.BAD_COMPRESSION
        if declared > max_bytes:
            return InvalidReason.FRAME_TOO_LARGE
        try:
            # without a declared size, max_output_size bounds the buffer and fails
            # a frame that would inflate past it.
            return self._decompressor.decompress(frame, max_output_size=max_bytes)
        except zstandard.ZstdError:
            return InvalidReason.BAD_COMPRESSION


class FrameCompressor:
    """the host's side (the replay server, the benchmark): one zstd frame per frame."""

    def __init__(self, dictionary: zstandard.ZstdCompressionDict, level: int = 3) -> None:
        self.dictionary_id = dictionary.dict_id()
        self._compressor = zstandard.ZstdCompressor(
            level=level, dict_data=dictionary, write_content_size=True
        )

    def compress(self, frame: bytes) -> bytes:
        return self._compressor.compress(frame)


def train_dictionary(samples: Sequence[bytes], size: int = 16 * 1024) -> bytes:
    """a dictionary trained on frames like the ones it will compress."""
    return zstandard.train_dictionary(size, list(samples)).as_bytes()
