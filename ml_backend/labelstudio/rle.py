"""Label Studio's brush RLE (thi.ng rle-pack): the public API, encoded and decoded with numpy.

- ``encode_mask`` / ``encode_rle``: an HxW mask or flat byte values -> the RLE
  list Label Studio stores, byte for byte what ``label_studio_sdk`` writes
  (``rle_encode``);
- ``decode_rle`` / ``decode_rle_rgba`` / ``decode_rle_values``: the RLE of a
  request -> a mask, after checking its header against the image's size
  (``rle_decode`` walks the records);
- ``read_header`` and the format's constants (``rle_format``).

Malformed streams raise ``ClientError`` naming the ``rle`` field.
"""

from __future__ import annotations

import numpy as np

from ml_backend.errors import invalid_parameter
from ml_backend.labelstudio.rle_decode import decode_values
from ml_backend.labelstudio.rle_encode import encode_mask, encode_rle
from ml_backend.labelstudio.rle_format import (
    CHANNELS,
    HEADER_BITS,
    MAX_BITS_PER_VALUE,
    MAX_PIXELS,
    MAX_TRAILING_BYTES,
    RleHeader,
    as_bytes,
    parse_header,
    read_header,
    rle_error,
)

__all__ = [
    "CHANNELS",
    "HEADER_BITS",
    "MAX_PIXELS",
    "RleHeader",
    "decode_rle",
    "decode_rle_rgba",
    "decode_rle_values",
    "encode_mask",
    "encode_rle",
    "read_header",
]


def _check_size(height: int, width: int) -> int:
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise invalid_parameter(name, f"must be a positive integer, got {value!r}")
    pixels = int(height) * int(width)
    if pixels > MAX_PIXELS:
        raise invalid_parameter(
            "rle", f"a {width}x{height} mask has {pixels} pixels, more than the limit of {MAX_PIXELS}"
        )
    return pixels


def decode_rle_values(rle: list[int] | bytes, value_count: int) -> np.ndarray:
    """Decodes a stream that must hold exactly ``value_count`` values (flat uint8)."""
    data = as_bytes(rle)
    header = parse_header(data)
    if header.value_count != value_count:
        raise rle_error(f"declares {header.value_count} values, expected {value_count}")
    if value_count < 1:
        raise rle_error("declares no values")
    if header.word_size > 8:
        raise rle_error(f"uses {header.word_size}-bit words, brush masks use at most 8")
    max_bytes = (HEADER_BITS + MAX_BITS_PER_VALUE * value_count + 7) // 8 + MAX_TRAILING_BYTES
    if len(data) > max_bytes:
        raise rle_error(f"is {len(data)} bytes long, more than any encoding of {value_count} values ({max_bytes})")
    return decode_values(data, header, value_count)


def decode_rle_rgba(rle: list[int] | bytes, height: int, width: int) -> np.ndarray:
    """Decodes a brush RLE into an HxWx4 uint8 RGBA array."""
    pixels = _check_size(height, width)
    return decode_rle_values(rle, pixels * CHANNELS).reshape(int(height), int(width), CHANNELS)


def decode_rle(rle: list[int] | bytes, height: int, width: int) -> np.ndarray:
    """Decodes a brush RLE into its HxW uint8 alpha channel (what Label Studio's tools read)."""
    # A copy, so the four times larger RGBA array is freed.
    return np.ascontiguousarray(decode_rle_rgba(rle, height, width)[:, :, 3])
