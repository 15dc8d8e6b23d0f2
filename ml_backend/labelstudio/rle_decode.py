"""Reads the records of a Label Studio brush RLE stream back into values (flat uint8).

Accepts any stream the thi.ng format allows with word sizes up to 8 bits, and
rejects malformed ones with a ``ClientError``; the caller (``rle``) has checked
the header against the size it expects.

The decoder cannot know where a record starts before reading the one in front
of it, so it computes, for every bit position of a chunk, where a record
starting there would end (one lookup in a table indexed by the next 19 bits),
doubles those pointers once, and walks the chain from the first record in
steps of two records; the records in between are filled in vectorised. Short
streams (up to 2 KiB) take a plain Python path instead, because numpy's
per-call overhead would make them slower than the SDK's reference.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ml_backend.errors import ClientError
from ml_backend.labelstudio.rle_format import HEADER_BITS, MAX_TRAILING_BYTES, RleHeader, rle_error

# Bit positions examined per decoding step; bounds the decoder's scratch memory
# (about 40 bytes per position) whatever the input size.
_CHUNK_BITS = 1 << 22


def _overshoot_error(covered: int, value_count: int) -> ClientError:
    return rle_error(f"runs cover {covered} values, more than the {value_count} its header declares")


def _ended_error(produced: int, value_count: int) -> ClientError:
    return rle_error(f"ends after {produced} of the {value_count} values its header declares")


def _check_end(end_bit: int, bit_count: int) -> None:
    if end_bit > bit_count:
        raise rle_error(f"is truncated: its last run needs {end_bit} bits, the data has {bit_count}")
    trailing = bit_count // 8 - (end_bit + 7) // 8
    if trailing > MAX_TRAILING_BYTES:
        raise rle_error(f"has {trailing} bytes after its last run, at most {MAX_TRAILING_BYTES} allowed")


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


def decode_values(data: bytes, header: RleHeader, value_count: int) -> np.ndarray:
    """The ``value_count`` values of a stream whose header declares that many (flat uint8)."""
    if len(data) <= _SCALAR_BYTES:
        return _decode_scalar(data, header, value_count)
    parser = _Parser(_Stream(data), header)
    return parser.values(parser.records(value_count))
