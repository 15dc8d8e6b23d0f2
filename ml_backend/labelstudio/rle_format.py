"""Label Studio's brush RLE bit format (thi.ng rle-pack): layout, header, what counts as a stream.

Stream layout, most significant bit first: a 32-bit value count (W*H*4 for an
RGBA mask), 5 bits word size - 1, four 4-bit run-length field widths - 1, then
records: 1 flag bit (1 = one value repeated, 0 = literal values), 2 bits that
pick a length field width L, L bits of count - 1, then one word (repeat) or
count words (literal).

``rle_encode`` writes this format, ``rle_decode`` reads it; ``rle`` is the API.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ml_backend.errors import ClientError, invalid_parameter

WORD_SIZE = 8
RUN_FIELD_WIDTHS = (3, 4, 8, 16)
HEADER_BITS = 32 + 5 + 4 * 4
CHANNELS = 4
# The header's 21 bits after the value count, as the SDK writes them: word size
# and the four length field widths, each minus one.
SIZES_FIELD = ((WORD_SIZE - 1) << 16) | sum((width - 1) << (12 - 4 * i) for i, width in enumerate(RUN_FIELD_WIDTHS))
# 2**25 pixels (e.g. 8192x4096) keeps one decoded RGBA mask at 128 MiB.
MAX_PIXELS = 1 << 25
# The SDK's encoder pads with up to 8 zero bits, thi.ng's with up to 7; anything
# much longer after the last record is not padding.
MAX_TRAILING_BYTES = 8
# Worst case of any valid stream: every value in its own record with the widest
# length field (1 + 2 + 16 + 8 bits).
MAX_BITS_PER_VALUE = 27


@dataclass(frozen=True)
class RleHeader:
    value_count: int
    word_size: int
    run_field_widths: tuple[int, int, int, int]


def rle_error(message: str) -> ClientError:
    """A malformed stream, reported against the request's ``rle`` field."""
    return invalid_parameter("rle", message)


def as_bytes(rle: object) -> bytes:
    """The stream as bytes, from the JSON list Label Studio sends (or bytes, or a flat array)."""
    if isinstance(rle, (bytes, bytearray, memoryview)):
        return bytes(rle)
    if isinstance(rle, np.ndarray):
        if rle.ndim != 1 or rle.dtype.kind not in "iu":
            raise rle_error("must be a flat list of integers 0..255")
        if rle.size and (rle.min() < 0 or rle.max() > 255):
            raise rle_error("holds values outside 0..255")
        return rle.astype(np.uint8).tobytes()
    if not isinstance(rle, (list, tuple)):
        raise rle_error(f"must be a list of integers 0..255, got {type(rle).__name__}")
    try:
        # bytes() checks type and range in C; the slow search below only runs on failure.
        return bytes(rle)
    except (TypeError, ValueError):
        pass
    for index, item in enumerate(rle):
        if isinstance(item, bool) or not isinstance(item, (int, np.integer)):
            raise invalid_parameter(f"rle[{index}]", f"must be an integer 0..255, got {type(item).__name__}")
        if not 0 <= item <= 255:
            raise invalid_parameter(f"rle[{index}]", f"is {item}, bytes must be 0..255")
    raise rle_error("must be a list of integers 0..255")


def parse_header(data: bytes) -> RleHeader:
    """The header of a stream already turned into bytes."""
    if len(data) * 8 < HEADER_BITS:
        raise rle_error(f"is {len(data)} bytes long, shorter than the {(HEADER_BITS + 7) // 8}-byte header")
    head = int.from_bytes(data[:7], "big") >> (56 - HEADER_BITS)
    value_count = head >> 21
    word_size = ((head >> 16) & 31) + 1
    widths = tuple(((head >> (12 - 4 * i)) & 15) + 1 for i in range(4))
    return RleHeader(value_count, word_size, widths)  # type: ignore[arg-type]


def read_header(rle: list[int] | bytes) -> RleHeader:
    """The header of a brush RLE stream (value count, word size, length field widths)."""
    return parse_header(as_bytes(rle))
