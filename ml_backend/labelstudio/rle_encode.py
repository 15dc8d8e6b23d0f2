"""Masks and byte arrays -> Label Studio brush RLE, byte for byte what the SDK writes.

The encoder is byte-for-byte what ``label_studio_sdk.converter.brush.encode_rle``
writes (including its quirks: a run of one value is a literal record, runs longer
than 256 always use the 16-bit field, and the last byte is followed by 1 to 8
zero padding bits).

It works on whole arrays: it finds runs on the HxW mask (an RGBA run is a pixel
run x 4) and packs all records into 32-bit words with one ``bincount``. Short
run lists (up to 256 runs) take a plain Python path instead, because numpy's
per-call overhead would make them slower than the SDK's reference.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ml_backend.labelstudio.rle_format import CHANNELS, HEADER_BITS, RUN_FIELD_WIDTHS, SIZES_FIELD, WORD_SIZE

_LONGEST_RUN = 1 << 16


def _run_lengths(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lengths and values of the maximal runs of equal values in a flat array."""
    ends = np.flatnonzero(values[1:] != values[:-1])
    boundaries = np.empty(len(ends) + 2, np.int64)
    boundaries[0], boundaries[-1] = -1, len(values) - 1
    boundaries[1:-1] = ends
    return np.diff(boundaries), values[boundaries[1:]].astype(np.int64)


# Per size class: the bits above the count field (repeat flag and class) and the record width.
_CLASS_HEADS = np.array(
    [(4 | size_class) << (width + WORD_SIZE) for size_class, width in enumerate(RUN_FIELD_WIDTHS)], np.int64
)
_CLASS_WIDTHS = np.array([3 + width + WORD_SIZE for width in RUN_FIELD_WIDTHS], np.int64)
_CLASS_LIMITS = np.array([8, 16, 256], np.int64)
# A single value is written as a one-value literal record: the repeat flag is clear.
_SINGLE_FLAG = np.int64(4 << (RUN_FIELD_WIDTHS[0] + WORD_SIZE))


def _records_for_runs(lengths: np.ndarray, run_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes and bit widths of the records the SDK encoder writes for these runs."""
    long_runs = lengths > 256
    if long_runs.any():
        # The SDK writes runs over 256 with the 16-bit field, split into pieces of
        # 2**16 plus the rest, and keeps that field even for a short rest.
        pieces = np.where(long_runs, (lengths - 1) // _LONGEST_RUN + 1, 1)
        run_index = np.repeat(np.arange(len(lengths)), pieces)
        first_piece = np.cumsum(pieces) - pieces
        piece_index = np.arange(len(run_index)) - first_piece[run_index]
        is_last = piece_index == pieces[run_index] - 1
        lengths = np.where(is_last, lengths[run_index] - piece_index * _LONGEST_RUN, _LONGEST_RUN)
        run_values, long_runs = run_values[run_index], long_runs[run_index]
        size_class = np.where(long_runs, 3, np.searchsorted(_CLASS_LIMITS, lengths))
        single = (lengths == 1) & ~long_runs
    else:
        size_class = np.searchsorted(_CLASS_LIMITS, lengths)
        single = lengths == 1
    codes = _CLASS_HEADS[size_class]
    codes += (lengths - 1) << WORD_SIZE
    codes += run_values
    codes -= single * _SINGLE_FLAG
    return codes, _CLASS_WIDTHS[size_class]


def _pack_bits(codes: np.ndarray, widths: np.ndarray, total_bytes: int) -> bytes:
    """Concatenates codes (each 1..32 bits, MSB first) into a byte string of total_bytes."""
    offsets = np.cumsum(widths)
    offsets -= widths
    word_index = offsets >> 5
    end = (offsets & 31) + widths  # where the code ends, counted from its first word's top bit
    spill = end - 32
    np.maximum(spill, 0, out=spill)
    head = np.where(end <= 32, codes << np.maximum(32 - end, 0), codes >> spill)
    # Fields never overlap, so summing is OR-ing; float64 holds any 32-bit sum exactly.
    word_count = (total_bytes + 3) // 4 + 1
    words = np.bincount(word_index, weights=head, minlength=word_count)
    spilled = np.flatnonzero(spill)
    if len(spilled):
        tail = (codes[spilled] & ((1 << spill[spilled]) - 1)) << (32 - spill[spilled])
        words += np.bincount(word_index[spilled] + 1, weights=tail, minlength=word_count)
    return words.astype(">u4").tobytes()[:total_bytes]


# Below this many runs, plain Python beats numpy's per-call overhead.
_SCALAR_RUNS = 256


def _encode_runs_scalar(lengths: list[int], run_values: list[int], value_count: int) -> list[int]:
    """The same records as the vectorised path, for short run lists, packed into one integer."""
    stream = (value_count << 21) | SIZES_FIELD
    bit_count = HEADER_BITS
    class_heads, class_widths = _CLASS_HEADS.tolist(), _CLASS_WIDTHS.tolist()
    for length, value in zip(lengths, run_values):
        if length > 256:
            while length > _LONGEST_RUN:
                stream = (stream << class_widths[3]) | class_heads[3] | ((_LONGEST_RUN - 1) << WORD_SIZE) | value
                bit_count += class_widths[3]
                length -= _LONGEST_RUN
            size_class = 3
        else:
            size_class = 0 if length <= 8 else 1 if length <= 16 else 2
        code = class_heads[size_class] | ((length - 1) << WORD_SIZE) | value
        if length == 1 and size_class == 0:
            code -= int(_SINGLE_FLAG)
        stream = (stream << class_widths[size_class]) | code
        bit_count += class_widths[size_class]
    total_bytes = bit_count // 8 + 1
    return list((stream << (total_bytes * 8 - bit_count)).to_bytes(total_bytes, "big"))


def _encode_runs(lengths: np.ndarray, run_values: np.ndarray, value_count: int) -> list[int]:
    if len(lengths) <= _SCALAR_RUNS:
        return _encode_runs_scalar(lengths.tolist(), run_values.tolist(), value_count)
    codes, widths = _records_for_runs(lengths, run_values)
    codes = np.concatenate(([value_count, SIZES_FIELD], codes))
    widths = np.concatenate(([32, 21], widths))
    total_bits = int(widths.sum())
    # The SDK always appends 8 - total_bits % 8 zero bits: one to eight.
    total_bytes = total_bits // 8 + 1
    return list(_pack_bits(codes, widths, total_bytes))


def encode_rle(values: np.ndarray | Sequence[int]) -> list[int]:
    """Encodes a flat array of byte values (for brushes: RGBA, W*H*4 of them)."""
    flat = np.asarray(values).reshape(-1)
    if flat.size == 0:
        raise ValueError("encode_rle needs at least one value")
    if flat.size >= 1 << 32:
        raise ValueError(f"encode_rle holds at most 2**32 - 1 values, got {flat.size}")
    if flat.dtype != np.uint8:
        if flat.dtype.kind not in "iub" or flat.min() < 0 or flat.max() > 255:
            raise ValueError("encode_rle encodes 8-bit values (0..255)")
        flat = flat.astype(np.uint8)
    lengths, run_values = _run_lengths(flat)
    return _encode_runs(lengths, run_values, flat.size)


def encode_mask(mask: np.ndarray) -> list[int]:
    """Encodes an HxW mask (nonzero = inside) as the RGBA brush RLE Label Studio draws.

    Every channel of an inside pixel is 255 and of an outside pixel 0, exactly
    what ``label_studio_sdk.converter.brush.mask2rle`` writes for a 0/255 mask.
    """
    array = np.asarray(mask)
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"encode_mask needs a non-empty HxW mask, got shape {array.shape}")
    inside = array.reshape(-1) != 0
    # Each pixel becomes four equal bytes, so RGBA runs are the mask's runs x 4.
    lengths, run_inside = _run_lengths(inside)
    return _encode_runs(lengths * CHANNELS, run_inside * 255, inside.size * CHANNELS)


# --------------------------------------------------------------------------- decode
