"""Our brush RLE codec against label_studio_sdk's reference, bit for bit, and on malformed input."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from label_studio_sdk.converter import brush

from ml_backend.errors import ClientError
from ml_backend.labelstudio import rle, rle_decode, rle_encode
from ml_backend.tools.bench_rle import _noisy_mask, benchmark_rle

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@contextlib.contextmanager
def decoder_path(path: str):
    """Forces one decoder/encoder path: "scalar", "vector", or "vector" with tiny chunks."""
    saved = (rle_decode._SCALAR_BYTES, rle_encode._SCALAR_RUNS, rle_decode._CHUNK_BITS)
    if path == "scalar":
        rle_decode._SCALAR_BYTES, rle_encode._SCALAR_RUNS = 1 << 40, 1 << 40
    elif path == "vector":
        rle_decode._SCALAR_BYTES, rle_encode._SCALAR_RUNS = 0, 0
    elif path == "chunked":
        rle_decode._SCALAR_BYTES, rle_encode._SCALAR_RUNS, rle_decode._CHUNK_BITS = 0, 0, 97
    try:
        yield
    finally:
        rle_decode._SCALAR_BYTES, rle_encode._SCALAR_RUNS, rle_decode._CHUNK_BITS = saved


PATHS = ["default", "scalar", "vector", "chunked"]


@st.composite
def masks(draw, max_side: int = 48) -> np.ndarray:
    height = draw(st.integers(1, max_side))
    width = draw(st.integers(1, max_side))
    kind = draw(st.sampled_from(["noisy", "density", "blocky", "empty", "full", "stripes"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "noisy":
        mask = rng.random((height, width)) < 0.5
    elif kind == "density":
        mask = rng.random((height, width)) < draw(st.floats(0, 1))
    elif kind == "blocky":
        mask = np.zeros((height, width), bool)
        for _ in range(draw(st.integers(1, 5))):
            y0, x0 = rng.integers(0, height), rng.integers(0, width)
            mask[y0 : y0 + rng.integers(1, height + 1), x0 : x0 + rng.integers(1, width + 1)] ^= True
    elif kind == "empty":
        mask = np.zeros((height, width), bool)
    elif kind == "full":
        mask = np.ones((height, width), bool)
    else:
        mask = (np.arange(width)[None, :] // draw(st.integers(1, 70)) % 2).astype(bool).repeat(height, 0)
    return mask.astype(np.uint8) * 255


def reference_alpha(stream: list[int], height: int, width: int) -> np.ndarray:
    return np.asarray(brush.decode_rle(stream)).reshape(height, width, 4)[:, :, 3]


@pytest.mark.parametrize("path", PATHS)
@SETTINGS
@given(mask=masks())
def test_encode_mask_matches_reference_byte_for_byte(path, mask):
    with decoder_path(path):
        ours = rle.encode_mask(mask)
    assert ours == brush.mask2rle(mask)
    # A bool mask means the same 0/255 mask.
    with decoder_path(path):
        assert rle.encode_mask(mask > 0) == ours


@pytest.mark.parametrize("path", PATHS)
@SETTINGS
@given(mask=masks())
def test_decode_reads_reference_output_and_reference_reads_ours(path, mask):
    height, width = mask.shape
    reference_stream = brush.mask2rle(mask)
    with decoder_path(path):
        decoded = rle.decode_rle(reference_stream, height, width)
        rgba = rle.decode_rle_rgba(reference_stream, height, width)
        ours = rle.encode_mask(mask)
    assert decoded.dtype == np.uint8 and decoded.shape == (height, width)
    np.testing.assert_array_equal(decoded, mask)
    np.testing.assert_array_equal(rgba, np.repeat(mask[:, :, None], 4, axis=2))
    np.testing.assert_array_equal(reference_alpha(ours, height, width), mask)


@pytest.mark.parametrize("path", PATHS)
@SETTINGS
@given(data=st.data())
def test_encode_rle_matches_reference_on_any_bytes(path, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    run_values = rng.integers(0, 256, data.draw(st.integers(1, 60)))
    run_lengths = rng.integers(1, data.draw(st.sampled_from([3, 20, 300])), len(run_values))
    values = np.repeat(run_values, run_lengths).astype(np.uint8)
    with decoder_path(path):
        ours = rle.encode_rle(values)
        back = rle.decode_rle_values(ours, len(values))
    assert ours == brush.encode_rle(values)
    np.testing.assert_array_equal(back, values)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("length", [1, 2, 8, 9, 16, 17, 256, 257, 65536, 65537, 131072, 131073, 200001])
def test_run_length_boundaries_match_reference(path, length):
    values = np.concatenate([np.full(length, 7, np.uint8), [9], np.full(3, 7, np.uint8)])
    with decoder_path(path):
        ours = rle.encode_rle(values)
        np.testing.assert_array_equal(rle.decode_rle_values(ours, len(values)), values)
    assert ours == brush.encode_rle(values)


@pytest.mark.parametrize("path", PATHS)
def test_large_masks_with_long_runs(path):
    mask = np.zeros((300, 500), np.uint8)
    mask[40:260, 100:400] = 255
    mask[270:, :] = 255  # one run of 30 rows x 500 pixels x 4 bytes > 2**16
    with decoder_path(path):
        ours = rle.encode_mask(mask)
        decoded = rle.decode_rle(ours, 300, 500)
    assert ours == brush.mask2rle(mask)
    np.testing.assert_array_equal(decoded, mask)


def test_alpha_channel_is_what_decode_rle_returns():
    rng = np.random.default_rng(3)
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[5:15, 4:25] = (255, 0, 0, 178)  # Label Studio draws strokes in the label colour
    rgba[:, :, 3] = np.where(rng.random((20, 30)) < 0.1, 60, rgba[:, :, 3])  # anti-aliased edge values
    stream = rle.encode_rle(rgba.reshape(-1))
    np.testing.assert_array_equal(rle.decode_rle(stream, 20, 30), rgba[:, :, 3])
    np.testing.assert_array_equal(rle.decode_rle_rgba(stream, 20, 30), rgba)
    np.testing.assert_array_equal(reference_alpha(stream, 20, 30), rgba[:, :, 3])


# Streams written record by record, as thi.ng's encoder (Label Studio's frontend) may:
# literal records of many values, other word sizes and length field widths.
@st.composite
def general_streams(draw):
    word_size = draw(st.integers(1, 8))
    widths = [draw(st.integers(1, 16)) for _ in range(4)]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    records = []
    for _ in range(draw(st.integers(1, 40))):
        size_class = draw(st.integers(0, 3))
        count = int(rng.integers(1, min(1 << widths[size_class], 300) + 1))
        repeat = draw(st.booleans())
        words = rng.integers(0, 1 << word_size, 1 if repeat else count).tolist()
        records.append((repeat, size_class, count, words))
    value_count = sum(count for _, _, count, _ in records)
    bits = f"{value_count:032b}{word_size - 1:05b}" + "".join(f"{w - 1:04b}" for w in widths)
    for repeat, size_class, count, words in records:
        bits += f"{int(repeat)}{size_class:02b}{count - 1:0{widths[size_class]}b}"
        bits += "".join(f"{word:0{word_size}b}" for word in words)
    bits += "0" * draw(st.integers(0, 8) if len(bits) % 8 == 0 else st.just(8 - len(bits) % 8))
    stream = [int(bits[i : i + 8], 2) for i in range(0, len(bits), 8)]
    return stream, value_count


@pytest.mark.parametrize("path", PATHS)
@SETTINGS
@given(case=general_streams())
def test_decoder_reads_any_valid_stream_like_the_reference(path, case):
    stream, value_count = case
    with decoder_path(path):
        ours = rle.decode_rle_values(stream, value_count)
    np.testing.assert_array_equal(ours, np.asarray(brush.decode_rle(stream)))
    with decoder_path(path):
        # bytes and numpy arrays are read the same as JSON lists
        np.testing.assert_array_equal(rle.decode_rle_values(bytes(stream), value_count), ours)
        np.testing.assert_array_equal(rle.decode_rle_values(np.asarray(stream), value_count), ours)


# ----------------------------------------------------------------------------- malformed


def assert_rle_error(error: pytest.ExceptionInfo, *words: str) -> None:
    assert isinstance(error.value, ClientError)
    assert error.value.code == "InvalidParameter"
    assert error.value.field.startswith("rle")
    for word in words:
        assert word in error.value.message, error.value.message


@pytest.fixture(scope="module")
def valid_stream() -> list[int]:
    mask = np.zeros((24, 32), np.uint8)
    mask[3:20, 5:30] = 255
    mask[::3, ::5] = 255
    return brush.mask2rle(mask)


@pytest.mark.parametrize("path", PATHS)
def test_declared_count_must_match_the_image(path, valid_stream):
    with decoder_path(path), pytest.raises(ClientError) as error:
        rle.decode_rle(valid_stream, 25, 32)
    assert_rle_error(error, "declares 3072 values", "3200")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("cut", [1, 2, 5, 20])
def test_truncated_stream_is_rejected(path, valid_stream, cut):
    with decoder_path(path), pytest.raises(ClientError) as error:
        rle.decode_rle(valid_stream[:-cut], 24, 32)
    assert_rle_error(error)
    assert "truncated" in error.value.message or "ends after" in error.value.message


@pytest.mark.parametrize("path", PATHS)
def test_runs_past_the_declared_count_are_rejected(path):
    # Header says 4 values, one repeat record of 8.
    bits = f"{4:032b}{7:05b}" + "".join(f"{w - 1:04b}" for w in (3, 4, 8, 16)) + "1" + "00" + "111" + "11111111"
    bits += "0" * (8 - len(bits) % 8)
    stream = [int(bits[i : i + 8], 2) for i in range(0, len(bits), 8)]
    with decoder_path(path), pytest.raises(ClientError) as error:
        rle.decode_rle(stream, 1, 1)
    assert_rle_error(error, "runs cover 8 values, more than the 4")


@pytest.mark.parametrize("path", PATHS)
def test_trailing_garbage_is_rejected(path, valid_stream):
    with decoder_path(path), pytest.raises(ClientError) as error:
        rle.decode_rle(valid_stream + [0] * 9, 24, 32)
    assert_rle_error(error, "bytes after its last run")
    # Padding as the encoders write it is accepted.
    with decoder_path(path):
        assert rle.decode_rle(valid_stream + [0] * 8, 24, 32).shape == (24, 32)


@pytest.mark.parametrize(
    "stream, field, words",
    [
        ([0, 1, 300], "rle[2]", ["300", "0..255"]),
        ([0, -1, 3], "rle[1]", ["-1"]),
        ([0, 1.5, 3], "rle[1]", ["float"]),
        ([0, "7", 3], "rle[1]", ["str"]),
        ([0, None], "rle[1]", ["NoneType"]),
        ([[0, 1]], "rle[0]", ["list"]),
        ("0,1,2", "rle", ["str"]),
        ({"counts": [1]}, "rle", ["dict"]),
        ([0, 0, 0], "rle", ["shorter than the 7-byte header"]),
    ],
)
def test_garbage_values_are_rejected(stream, field, words):
    with pytest.raises(ClientError) as error:
        rle.decode_rle(stream, 2, 2)
    assert error.value.code == "InvalidParameter"
    assert error.value.field == field
    for word in words:
        assert word in error.value.message


def test_absurd_sizes_are_rejected_before_any_work(valid_stream):
    for height, width, field in [(0, 5, "height"), (-3, 5, "height"), (5, 2.5, "width"), (True, 5, "height")]:
        with pytest.raises(ClientError) as error:
            rle.decode_rle(valid_stream, height, width)
        assert error.value.field == field
    with pytest.raises(ClientError) as error:
        rle.decode_rle(valid_stream, 100_000, 100_000)
    assert "more than the limit" in error.value.message


def test_oversized_stream_and_wide_words_are_rejected():
    header = f"{16:032b}{7:05b}" + "".join(f"{w - 1:04b}" for w in (3, 4, 8, 16))
    bits = header + "0" * (8 - len(header) % 8)
    small = [int(bits[i : i + 8], 2) for i in range(0, len(bits), 8)]
    with pytest.raises(ClientError) as error:
        rle.decode_rle(small + [0] * 5000, 2, 2)
    assert_rle_error(error, "more than any encoding of 16 values")
    wide = f"{16:032b}{15:05b}" + "".join(f"{w - 1:04b}" for w in (3, 4, 8, 16)) + "000"
    with pytest.raises(ClientError) as error:
        rle.decode_rle([int(wide[i : i + 8], 2) for i in range(0, 56, 8)] + [0] * 20, 2, 2)
    assert_rle_error(error, "16-bit words")


@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=300), height=st.integers(1, 12), width=st.integers(1, 12))
def test_random_bytes_after_a_valid_header_never_crash_or_hang(path, body, height, width):
    count = height * width * 4
    header = f"{count:032b}{7:05b}" + "".join(f"{w - 1:04b}" for w in (3, 4, 8, 16)) + "000"
    stream = [int(header[i : i + 8], 2) for i in range(0, 56, 8)] + list(body)
    try:
        with decoder_path(path):
            alpha = rle.decode_rle(stream, height, width)
    except ClientError as error:
        assert error.code == "InvalidParameter" and error.field.startswith("rle")
        return
    # Whatever decodes is a well-formed stream, so the reference reads the same.
    np.testing.assert_array_equal(alpha, reference_alpha(stream, height, width))


def test_benchmark_reports_both_codecs():
    report = benchmark_rle(height=24, width=32, repeats=1)
    assert report["identical"] is True
    # The size of the stream the benchmark timed: the noisy mask's encoding.
    assert report["rle_bytes"] == len(rle.encode_mask(_noisy_mask(24, 32)))
    for operation in ("encode", "decode"):
        assert report[f"{operation}_speedup"] == pytest.approx(
            report[f"{operation}_seconds"]["reference"] / report[f"{operation}_seconds"]["ours"]
        )
