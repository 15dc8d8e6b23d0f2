"""Label Studio's brush RLE (thi.ng rle-pack), encoded and decoded with numpy.

Stream layout, most significant bit first: a 32-bit value count (W*H*4 for an
RGBA mask), 5 bits word size - 1, four 4-bit run-length field widths - 1, then
records: 1 flag bit (1 = one value repeated, 0 = literal values), 2 bits that
pick a length field width L, L bits of count - 1, then one word (repeat) or
count words (literal).

The encoder is byte-for-byte what ``label_studio_sdk.converter.brush.encode_rle``
writes (including its quirks: a run of one value is a literal record, runs longer
than 256 always use the 16-bit field, and the last byte is followed by 1 to 8
zero padding bits). The decoder accepts any stream the thi.ng format allows with
word sizes up to 8 bits, and rejects malformed ones with a ``ClientError``.

Both work on whole arrays. The encoder finds runs on the HxW mask (an RGBA
run is a pixel run x 4) and packs all records into 32-bit words with one
``bincount``. The decoder cannot know where a record starts before reading the
one in front of it, so it computes, for every bit position of a chunk, where a
record starting there would end (one lookup in a table indexed by the next 19
bits), doubles those pointers once, and walks the chain from the first record
in steps of two records; the records in between are filled in vectorised.
Short streams (up to 2 KiB, or 256 runs to encode) take a plain Python path
instead, because numpy's per-call overhead would make them slower than the
SDK's reference.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ml_backend.errors import ClientError, invalid_parameter

WORD_SIZE = 8
RUN_FIELD_WIDTHS = (3, 4, 8, 16)
HEADER_BITS = 32 + 5 + 4 * 4
CHANNELS = 4
# 2**25 pixels (e.g. 8192x4096) keeps one decoded RGBA mask at 128 MiB.
MAX_PIXELS = 1 << 25
# The SDK's encoder pads with up to 8 zero bits, thi.ng's with up to 7; anything
# much longer after the last record is not padding.
MAX_TRAILING_BYTES = 8
# Worst case of any valid stream: every value in its own record with the widest
# length field (1 + 2 + 16 + 8 bits).
_MAX_BITS_PER_VALUE = 27
# Bit positions examined per decoding step; bounds the decoder's scratch memory
# (about 40 bytes per position) whatever the input size.
_CHUNK_BITS = 1 << 22
_LONGEST_RUN = 1 << 16


def _rle_error(message: str) -> ClientError:
    return invalid_parameter("rle", message)


# --------------------------------------------------------------------------- encode


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


_SIZES_FIELD = ((WORD_SIZE - 1) << 16) | sum((width - 1) << (12 - 4 * i) for i, width in enumerate(RUN_FIELD_WIDTHS))
# Below this many runs, plain Python beats numpy's per-call overhead.
_SCALAR_RUNS = 256


def _encode_runs_scalar(lengths: list[int], run_values: list[int], value_count: int) -> list[int]:
    """The same records as the vectorised path, for short run lists, packed into one integer."""
    stream = (value_count << 21) | _SIZES_FIELD
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
    codes = np.concatenate(([value_count, _SIZES_FIELD], codes))
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


@dataclass(frozen=True)
class RleHeader:
    value_count: int
    word_size: int
    run_field_widths: tuple[int, int, int, int]


def _as_bytes(rle: object) -> bytes:
    if isinstance(rle, (bytes, bytearray, memoryview)):
        return bytes(rle)
    if isinstance(rle, np.ndarray):
        if rle.ndim != 1 or rle.dtype.kind not in "iu":
            raise _rle_error("must be a flat list of integers 0..255")
        if rle.size and (rle.min() < 0 or rle.max() > 255):
            raise _rle_error("holds values outside 0..255")
        return rle.astype(np.uint8).tobytes()
    if not isinstance(rle, (list, tuple)):
        raise _rle_error(f"must be a list of integers 0..255, got {type(rle).__name__}")
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
    raise _rle_error("must be a list of integers 0..255")


def _read_header(data: bytes) -> RleHeader:
    if len(data) * 8 < HEADER_BITS:
        raise _rle_error(f"is {len(data)} bytes long, shorter than the {(HEADER_BITS + 7) // 8}-byte header")
    head = int.from_bytes(data[:7], "big") >> (56 - HEADER_BITS)
    value_count = head >> 21
    word_size = ((head >> 16) & 31) + 1
    widths = tuple(((head >> (12 - 4 * i)) & 15) + 1 for i in range(4))
    return RleHeader(value_count, word_size, widths)  # type: ignore[arg-type]


def read_header(rle: list[int] | bytes) -> RleHeader:
    """The header of a brush RLE stream (value count, word size, length field widths)."""
    return _read_header(_as_bytes(rle))


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


def _overshoot_error(covered: int, value_count: int) -> ClientError:
    return _rle_error(f"runs cover {covered} values, more than the {value_count} its header declares")


def _ended_error(produced: int, value_count: int) -> ClientError:
    return _rle_error(f"ends after {produced} of the {value_count} values its header declares")


def _check_end(end_bit: int, bit_count: int) -> None:
    if end_bit > bit_count:
        raise _rle_error(f"is truncated: its last run needs {end_bit} bits, the data has {bit_count}")
    trailing = bit_count // 8 - (end_bit + 7) // 8
    if trailing > MAX_TRAILING_BYTES:
        raise _rle_error(f"has {trailing} bytes after its last run, at most {MAX_TRAILING_BYTES} allowed")


# Up to this many bytes a plain Python walk takes a few milliseconds at most and
# spares the vector path's one-off lookup table (2 MiB, ~5 ms to build), so even
# a process's first decode is never slower than the SDK's.
_SCALAR_BYTES = 2048


def _decode_scalar(data: bytes, header: RleHeader, value_count: int) -> np.ndarray:
    """Record by record, for short streams; same results and errors as the vectorised path."""
    bit_count = len(data) * 8
    # Zeros after the end, as in _Stream: a record's header fields may be read
    # past it before the record is found to be cut off (its values never are).
    padding = 64
    stream = int.from_bytes(data, "big") << padding
    total = bit_count + padding

    def read(position: int, width: int) -> int:
        return (stream >> (total - position - width)) & ((1 << width) - 1)

    word_size, widths = header.word_size, header.run_field_widths
    values: list[int] = []
    repeats: list[int] = []
    position, produced = HEADER_BITS, 0
    while produced < value_count:
        if position >= bit_count:
            raise _ended_error(produced, value_count)
        repeat = read(position, 1)
        field_width = widths[read(position + 1, 2)]
        count = read(position + 3, field_width) + 1
        value_bit = position + 3 + field_width
        end = value_bit + (word_size if repeat else count * word_size)
        if produced + count > value_count:
            raise _overshoot_error(produced + count, value_count)
        if end <= bit_count:
            if repeat:
                values.append(read(value_bit, word_size))
                repeats.append(count)
            else:
                values.extend(read(value_bit + i * word_size, word_size) for i in range(count))
                repeats.extend([1] * count)
        elif produced + count == value_count:
            _check_end(end, bit_count)
        produced += count
        position = end
    _check_end(position, bit_count)
    return np.repeat(np.asarray(values, np.uint8), repeats)


# A record's length depends only on its first 3 + 16 bits at most.
_PREFIX_BITS = 19
# The Python loop that walks the record chain steps 2**_JUMP_DOUBLINGS records at a
# time; each doubling is a gather over every bit, about what halving the loop saves.
_JUMP_DOUBLINGS = 1


@functools.lru_cache(maxsize=8)
def _record_length_table(word_size: int, field_widths: tuple[int, ...]) -> np.ndarray:
    """Bits taken by a record, indexed by its first 19 bits: repeat flag, size class, 16 bits."""
    low_bits = _PREFIX_BITS - 3
    following = np.arange(1 << low_bits, dtype=np.int32)
    table = np.empty((2, 4, 1 << low_bits), np.int32)
    for size_class, width in enumerate(field_widths):
        fixed = 3 + width + word_size
        table[0, size_class] = fixed + (following >> (low_bits - width)) * word_size  # literal: count words
        table[1, size_class] = fixed  # repeat: one word
    return table.reshape(-1)


class _Stream:
    """A byte string viewed as bits, with zero padding so reads may run past the end."""

    def __init__(self, data: bytes) -> None:
        self.bit_count = len(data) * 8
        self.bytes = np.frombuffer(data + bytes(8), np.uint8)

    def prefixes(self, start_bit: int, stop_bit: int) -> np.ndarray:
        """The 19 bits starting at every bit position in [start_bit, stop_bit)."""
        first_byte, last_byte = start_bit >> 3, (stop_bit + 7) >> 3
        count = last_byte - first_byte
        chunk = self.bytes[first_byte : last_byte + 3].astype(np.uint32)
        word = chunk[:count] << np.uint32(24)
        for shift, lag in ((16, 1), (8, 2), (0, 3)):
            word |= chunk[lag : lag + count] << np.uint32(shift)
        # uint32 shifts drop the bits above, leaving at least 25 valid bits on top.
        every_bit = word[:, None] << np.arange(8, dtype=np.uint32)[None, :]
        every_bit >>= np.uint32(32 - _PREFIX_BITS)
        skip = start_bit - first_byte * 8
        return every_bit.reshape(-1)[skip : skip + stop_bit - start_bit]

    def window_at(self, positions: np.ndarray) -> np.ndarray:
        """The 32 bits starting at each given bit position, as uint64."""
        first_byte = positions >> 3
        forty = np.zeros(len(positions), np.uint64)
        for lag in range(5):
            forty = (forty << np.uint64(8)) | self.bytes[first_byte + lag].astype(np.uint64)
        return (forty >> (np.uint64(8) - (positions & 7).astype(np.uint64))) & np.uint64(0xFFFFFFFF)


@dataclass
class _Records:
    """Parsed records: bit position, repeat flag, value count, first value bit, end bit."""

    positions: np.ndarray
    repeat: np.ndarray
    counts: np.ndarray
    value_bits: np.ndarray
    ends: np.ndarray

    def select(self, keep: slice) -> "_Records":
        return _Records(*(getattr(self, name)[keep] for name in self.__dataclass_fields__))

    @staticmethod
    def concatenate(parts: list["_Records"]) -> "_Records":
        return _Records(
            *(np.concatenate([getattr(part, name) for part in parts]) for name in _Records.__dataclass_fields__)
        )


class _Parser:
    def __init__(self, stream: _Stream, header: RleHeader) -> None:
        self.stream = stream
        self.word_size = header.word_size
        self.field_widths = np.asarray(header.run_field_widths, np.uint64)
        self.length_table = _record_length_table(header.word_size, header.run_field_widths)

    def fields(self, positions: np.ndarray) -> _Records:
        windows = self.stream.window_at(positions)
        repeat = (windows >> np.uint64(31)).astype(bool)
        field_width = self.field_widths[((windows >> np.uint64(29)) & np.uint64(3)).astype(np.intp)]
        counts = ((windows << np.uint64(3)) & np.uint64(0xFFFFFFFF)) >> (np.uint64(32) - field_width)
        counts = counts.astype(np.int64) + 1
        value_bits = positions + 3 + field_width.astype(np.int64)
        ends = value_bits + np.where(repeat, 1, counts) * self.word_size
        return _Records(positions, repeat, counts, value_bits, ends)

    def chain(self, entry: int, stop_bit: int) -> np.ndarray:
        """Starts of the records from ``entry`` on that begin before ``stop_bit``."""
        node_count = stop_bit - entry
        # following[p]: where a record starting at bit entry + p would end; all
        # positions at or past stop_bit collapse into one sink node.
        following = np.empty(node_count + 1, np.int32)
        np.take(self.length_table, self.stream.prefixes(entry, stop_bit), out=following[:node_count])
        following[:node_count] += np.arange(node_count, dtype=np.int32)
        np.minimum(following, node_count, out=following)
        following[node_count] = node_count
        # Pointer doubling: jump[p] is 2**_JUMP_DOUBLINGS records ahead, so the
        # Python loop below runs once per that many records.
        jump = following
        for _ in range(_JUMP_DOUBLINGS):
            jump = jump[jump]
        anchors = []
        position = 0
        jumps = memoryview(jump)
        while position < node_count:
            anchors.append(position)
            position = jumps[position]
        steps = np.empty((len(anchors), 1 << _JUMP_DOUBLINGS), np.int32)
        steps[:, 0] = anchors
        for step in range(1, steps.shape[1]):
            steps[:, step] = following[steps[:, step - 1]]
        starts = steps.reshape(-1)
        return starts[starts < node_count].astype(np.int64) + entry

    def records(self, value_count: int) -> _Records:
        """Follows records from the header until they hold ``value_count`` values."""
        bit_count = self.stream.bit_count
        entry = HEADER_BITS
        produced = 0
        parts: list[_Records] = []
        while True:
            if entry >= bit_count:
                raise _ended_error(produced, value_count)
            part = self.fields(self.chain(entry, min(entry + _CHUNK_BITS, bit_count)))
            totals = produced + np.cumsum(part.counts)
            last = int(np.searchsorted(totals, value_count))
            if last < len(totals):
                parts.append(part.select(slice(0, last + 1)))
                if totals[last] != value_count:
                    raise _overshoot_error(int(totals[last]), value_count)
                break
            parts.append(part)
            produced = int(totals[-1])
            entry = int(part.ends[-1])
        records = _Records.concatenate(parts)
        _check_end(int(records.ends[-1]), bit_count)
        return records

    def values(self, records: _Records) -> np.ndarray:
        literal = ~records.repeat
        words_per_record = np.where(literal, records.counts, 1)
        first_word = np.cumsum(words_per_record) - words_per_record
        word_index = np.arange(int(words_per_record.sum()), dtype=np.int64) - np.repeat(first_word, words_per_record)
        word_bits = np.repeat(records.value_bits, words_per_record) + word_index * self.word_size
        words = (self.stream.window_at(word_bits) >> np.uint64(32 - self.word_size)).astype(np.uint8)
        repeats = np.where(np.repeat(literal, words_per_record), 1, np.repeat(records.counts, words_per_record))
        return np.repeat(words, repeats)


def decode_rle_values(rle: list[int] | bytes, value_count: int) -> np.ndarray:
    """Decodes a stream that must hold exactly ``value_count`` values (flat uint8)."""
    data = _as_bytes(rle)
    header = _read_header(data)
    if header.value_count != value_count:
        raise _rle_error(f"declares {header.value_count} values, expected {value_count}")
    if value_count < 1:
        raise _rle_error("declares no values")
    if header.word_size > 8:
        raise _rle_error(f"uses {header.word_size}-bit words, brush masks use at most 8")
    max_bytes = (HEADER_BITS + _MAX_BITS_PER_VALUE * value_count + 7) // 8 + MAX_TRAILING_BYTES
    if len(data) > max_bytes:
        raise _rle_error(f"is {len(data)} bytes long, more than any encoding of {value_count} values ({max_bytes})")
    if len(data) <= _SCALAR_BYTES:
        return _decode_scalar(data, header, value_count)
    parser = _Parser(_Stream(data), header)
    return parser.values(parser.records(value_count))


def decode_rle_rgba(rle: list[int] | bytes, height: int, width: int) -> np.ndarray:
    """Decodes a brush RLE into an HxWx4 uint8 RGBA array."""
    pixels = _check_size(height, width)
    return decode_rle_values(rle, pixels * CHANNELS).reshape(int(height), int(width), CHANNELS)


def decode_rle(rle: list[int] | bytes, height: int, width: int) -> np.ndarray:
    """Decodes a brush RLE into its HxW uint8 alpha channel (what Label Studio's tools read)."""
    # A copy, so the four times larger RGBA array is freed.
    return np.ascontiguousarray(decode_rle_rgba(rle, height, width)[:, :, 3])
