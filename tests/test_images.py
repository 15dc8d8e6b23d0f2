"""Byte-level checks of the image/mask decoders and the result encoder."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from ml_backend.errors import ClientError
from ml_backend.io.images import (
    IMAGE_MAX_BYTES,
    MASK_MAX_BYTES,
    decode_image,
    decode_mask,
    encode_image,
    image_format_of,
)
from ml_backend.server.http_errors import http_status

RNG = np.random.default_rng(7)


def encoded(image: Image.Image | np.ndarray, image_format: str, **options: object) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def random_rgb(height: int, width: int) -> np.ndarray:
    return RNG.integers(0, 256, (height, width, 3), dtype=np.uint8)


def png_chunk(chunk_type: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + chunk_type + payload + struct.pack(">I", zlib.crc32(chunk_type + payload))


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height: what a decompression bomb looks like."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + png_chunk(b"IEND", b"")
    )


def refusal(call, *args, **kwargs) -> ClientError:
    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    return caught.value


@pytest.mark.parametrize("image_format", ["PNG", "BMP", "WEBP"])
def test_lossless_formats_decode_exactly(image_format: str) -> None:
    pixels = random_rgb(40, 56)
    options = {"lossless": True} if image_format == "WEBP" else {}
    decoded = decode_image(encoded(pixels, image_format, **options))
    assert decoded.dtype == np.uint8 and decoded.shape == (40, 56, 3)
    np.testing.assert_array_equal(decoded, pixels)


def test_jpeg_decodes_close_to_source() -> None:
    pixels = np.zeros((48, 64, 3), np.uint8)
    pixels[:, :32] = (200, 30, 40)
    pixels[:, 32:] = (20, 60, 220)
    decoded = decode_image(encoded(pixels, "JPEG", quality=95))
    assert decoded.shape == (48, 64, 3)
    assert np.abs(decoded.astype(int) - pixels).mean() < 4


def test_format_is_sniffed_not_taken_from_names() -> None:
    assert image_format_of(encoded(random_rgb(32, 32), "PNG")) == "PNG"
    assert image_format_of(encoded(random_rgb(32, 32), "JPEG")) == "JPEG"
    assert image_format_of(encoded(random_rgb(32, 32), "BMP")) == "BMP"
    assert image_format_of(encoded(random_rgb(32, 32), "WEBP")) == "WEBP"
    assert image_format_of(encoded(random_rgb(32, 32), "GIF")) is None
    assert image_format_of(b"photo.png") is None


def test_empty_file_refused() -> None:
    error = refusal(decode_image, b"")
    assert (error.code, http_status(error), error.field) == ("InvalidImage.Content", 400, "ImageUrl")


def test_image_over_10_mb_refused_with_413() -> None:
    large = encoded(random_rgb(2000, 1800), "BMP")  # ~10.8 MB of valid BMP
    assert len(large) > IMAGE_MAX_BYTES
    error = refusal(decode_image, large, "ImageUrl")
    assert (error.code, http_status(error)) == ("InvalidFile.Size", 413)
    assert "ImageUrl" in error.message and "10 MB" in error.message


def test_mask_over_5_mb_refused_even_if_image_would_pass() -> None:
    mask = encoded(RNG.integers(0, 2, (1450, 1450, 3), dtype=np.uint8) * 255, "BMP")  # ~6.3 MB
    assert MASK_MAX_BYTES < len(mask) < IMAGE_MAX_BYTES
    error = refusal(decode_mask, mask, "MaskImageUrl", (1450, 1450))
    assert (error.code, http_status(error), error.field) == ("InvalidFile.Size", 413, "MaskImageUrl")
    assert "MaskImageUrl" in error.message and "5 MB" in error.message


@pytest.mark.parametrize("data", [b"GIF89a" + b"\0" * 100, b"garbage bytes, not an image" * 4, b"%PDF-1.7\n"])
def test_unaccepted_formats_refused_with_415(data: bytes) -> None:
    error = refusal(decode_image, data, "ImageUrl")
    assert (error.code, http_status(error)) == ("InvalidImage.Format", 415)
    assert "JPG, JPEG, PNG, BMP, WEBP" in error.message


def test_real_gif_refused() -> None:
    error = refusal(decode_image, encoded(random_rgb(40, 40), "GIF"))
    assert error.code == "InvalidImage.Format"


@pytest.mark.parametrize(("width", "height"), [(31, 40), (40, 31), (4097, 40), (40, 4097)])
def test_sides_outside_32_to_4096_refused(width: int, height: int) -> None:
    data = encoded(np.zeros((height, width), np.uint8), "PNG")
    error = refusal(decode_image, data, "ImageUrl")
    assert (error.code, http_status(error)) == ("InvalidImage.Resolution", 400)
    assert f"{width}x{height}" in error.message and "32" in error.message and "4096" in error.message
    assert "ImageUrl" in error.message


@pytest.mark.parametrize(("width", "height"), [(32, 32), (4096, 32)])
def test_sides_at_the_limits_accepted(width: int, height: int) -> None:
    assert decode_image(encoded(np.zeros((height, width), np.uint8), "PNG")).shape == (height, width, 3)


@pytest.mark.parametrize(("width", "height"), [(100000, 100000), (12000, 12000), (5000, 5000)])
def test_bomb_header_refused_from_header_without_pillow_warnings(width: int, height: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a DecompressionBombWarning would fail the test
        error = refusal(decode_image, png_claiming(width, height))
    assert error.code == "InvalidImage.Resolution"
    assert f"{width}x{height}" in error.message


def test_oversized_webp_refused() -> None:
    data = encoded(np.zeros((40, 5000, 3), np.uint8), "WEBP")
    error = refusal(decode_image, data)
    assert error.code == "InvalidImage.Resolution" and "5000x40" in error.message


@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "WEBP", "BMP"])
def test_truncated_files_refused_as_content(image_format: str) -> None:
    data = encoded(random_rgb(200, 200), image_format)
    error = refusal(decode_image, data[: len(data) // 2])
    assert (error.code, http_status(error)) == ("InvalidImage.Content", 400)


def test_corrupt_png_body_refused_as_content() -> None:
    data = bytearray(encoded(random_rgb(64, 64), "PNG"))
    data[100:140] = b"\xff" * 40  # inside the compressed IDAT stream
    error = refusal(decode_image, bytes(data))
    assert error.code == "InvalidImage.Content"


def upright_and_stored_for_orientation_6() -> tuple[np.ndarray, bytes]:
    upright = np.zeros((60, 40, 3), np.uint8)
    upright[:30] = (255, 0, 0)  # red top half
    upright[30:] = (0, 0, 255)  # blue bottom half
    # Orientation 6 says "rotate 90 degrees clockwise to display": store it turned the other way.
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    return upright, encoded(stored, "JPEG", quality=95, exif=exif.tobytes())


def test_exif_rotated_jpeg_decoded_upright() -> None:
    upright, data = upright_and_stored_for_orientation_6()
    assert Image.open(io.BytesIO(data)).size == (60, 40)  # stored sideways
    decoded = decode_image(data)
    assert decoded.shape == upright.shape
    assert np.abs(decoded.astype(int) - upright).mean() < 6


def test_exif_orientation_applied_to_masks_before_size_comparison() -> None:
    _upright, data = upright_and_stored_for_orientation_6()
    assert decode_mask(data, "MaskImageUrl", (60, 40)).shape == (60, 40)
    error = refusal(decode_mask, data, "MaskImageUrl", (40, 60))
    assert error.code == "InvalidImage.Resolution"


def test_rgba_image_drops_alpha_keeping_colours() -> None:
    rgba = np.dstack([random_rgb(40, 40), RNG.integers(0, 256, (40, 40), dtype=np.uint8)])
    decoded = decode_image(encoded(rgba, "PNG"))
    np.testing.assert_array_equal(decoded, rgba[..., :3])


def test_grey_image_becomes_rgb() -> None:
    grey = RNG.integers(0, 256, (40, 50), dtype=np.uint8)
    decoded = decode_image(encoded(grey, "PNG"))
    assert decoded.shape == (40, 50, 3)
    for channel in range(3):
        np.testing.assert_array_equal(decoded[..., channel], grey)


def test_palette_image_becomes_rgb() -> None:
    colours = np.array([(10, 20, 30), (200, 100, 0), (0, 255, 0), (90, 90, 250)], np.uint8)
    pixels = colours[RNG.integers(0, 4, (40, 40))]
    palette_image = Image.fromarray(pixels).quantize(colors=4)
    assert palette_image.mode == "P"
    np.testing.assert_array_equal(decode_image(encoded(palette_image, "PNG")), pixels)


def test_sixteen_bit_grey_keeps_its_brightness() -> None:
    grey16 = RNG.integers(0, 65536, (40, 40), dtype=np.uint16)
    data = encoded(Image.fromarray(grey16), "PNG")
    decoded = decode_image(data)
    np.testing.assert_array_equal(decoded[..., 0], (grey16 >> 8).astype(np.uint8))


def test_cmyk_jpeg_becomes_rgb() -> None:
    cmyk = Image.new("CMYK", (40, 40), (0, 255, 255, 0))  # pure red ink
    decoded = decode_image(encoded(cmyk, "JPEG", quality=95))
    assert decoded.shape == (40, 40, 3)
    red, green, blue = decoded.reshape(-1, 3).mean(axis=0)
    assert red > 200 and green < 50 and blue < 50


def test_grey_mask_is_the_brightest_channel() -> None:
    strokes = np.zeros((40, 50, 3), np.uint8)
    strokes[5:10, :, 1] = 200  # green strokes
    strokes[20:25, :, 0] = 255  # red strokes
    mask = decode_mask(encoded(strokes, "PNG"), "PosScribbleImageUrl", (40, 50))
    assert mask.shape == (40, 50) and mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, strokes.max(axis=2))


@pytest.mark.parametrize("stroke_colour", [(0, 255, 0), (0, 0, 0)])
def test_transparent_stroke_image_uses_alpha(stroke_colour: tuple[int, int, int]) -> None:
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[10:20, 5:35, :3] = stroke_colour
    rgba[10:20, 5:35, 3] = 255
    mask = decode_mask(encoded(rgba, "PNG"), "NegScribbleImageUrl", (40, 40))
    expected = np.zeros((40, 40), np.uint8)
    expected[10:20, 5:35] = 255
    np.testing.assert_array_equal(mask, expected)


def test_opaque_alpha_falls_back_to_colours() -> None:
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[0:8, :, 2] = 255
    mask = decode_mask(encoded(rgba, "PNG"), "MaskImageUrl", (40, 40))
    assert mask[0:8].min() == 255 and mask[8:].max() == 0


def test_palette_mask_with_transparency_uses_alpha() -> None:
    indices = np.zeros((40, 40), np.uint8)
    indices[:, 20:] = 1
    palette_image = Image.fromarray(indices, mode="L").convert("P")
    palette_image.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    mask = decode_mask(encoded(palette_image, "PNG", transparency=0), "MaskImageUrl", (40, 40))
    assert mask[:, :20].max() == 0 and mask[:, 20:].min() == 255


def test_integrated_mask_keeps_three_channels() -> None:
    integrated = np.zeros((40, 40, 3), np.uint8)
    integrated[0:20, :, 0] = 255  # current mask
    integrated[5:8, 5:30, 1] = 255  # positive strokes
    integrated[30:33, 5:30, 2] = 255  # negative strokes
    decoded = decode_mask(encoded(integrated, "PNG"), "IntegratedMaskUrl", (40, 40), channels="rgb")
    np.testing.assert_array_equal(decoded, integrated)


def test_integrated_mask_with_transparency_counts_transparent_as_zero() -> None:
    rgba = np.full((40, 40, 4), 255, np.uint8)
    rgba[:, 20:, 3] = 0
    decoded = decode_mask(encoded(rgba, "PNG"), "IntegratedMaskUrl", (40, 40), channels="rgb")
    assert decoded[:, :20].min() == 255 and decoded[:, 20:].max() == 0


def test_mask_resolution_must_match_image() -> None:
    data = encoded(np.zeros((40, 50), np.uint8), "PNG")
    error = refusal(decode_mask, data, "MaskImageUrl", (40, 60))
    assert (error.code, error.field) == ("InvalidImage.Resolution", "MaskImageUrl")
    assert "50x40" in error.message and "60x40" in error.message


def test_mask_runs_the_same_checks_as_images() -> None:
    assert refusal(decode_mask, b"", "MaskImageUrl", (40, 40)).code == "InvalidImage.Content"
    assert refusal(decode_mask, b"GIF89a...", "MaskImageUrl", (40, 40)).code == "InvalidImage.Format"
    error = refusal(decode_mask, png_claiming(100000, 100000), "MaskImageUrl", (100000, 100000))
    assert error.code == "InvalidImage.Resolution"


def decoded_with_pillow(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_png_round_trips_grey_rgb_and_rgba() -> None:
    grey = RNG.integers(0, 256, (33, 47), dtype=np.uint8)
    rgb = random_rgb(33, 47)
    rgba = np.dstack([rgb, grey])
    for pixels, mode in ((grey, "L"), (rgb, "RGB"), (rgba, "RGBA")):
        data = encode_image(pixels, "PNG")
        assert image_format_of(data) == "PNG"
        assert Image.open(io.BytesIO(data)).mode == mode
        np.testing.assert_array_equal(decoded_with_pillow(data), pixels)


def test_png_accepts_bool_masks_as_0_255() -> None:
    mask = RNG.integers(0, 2, (40, 40)).astype(bool)
    np.testing.assert_array_equal(decoded_with_pillow(encode_image(mask, "png")), mask.astype(np.uint8) * 255)


def test_jpg_encodes_rgb_in_the_right_channel_order() -> None:
    rgb = np.zeros((40, 40, 3), np.uint8)
    rgb[..., 0] = 250  # red: a BGR mix-up would come back blue
    data = encode_image(rgb, "JPG")
    assert image_format_of(data) == "JPEG"
    red, green, blue = decoded_with_pillow(data).reshape(-1, 3).mean(axis=0)
    assert red > 240 and blue < 10 and green < 10


def test_jpg_refuses_alpha() -> None:
    error = refusal(encode_image, np.zeros((40, 40, 4), np.uint8), "JPG")
    assert error.code == "InvalidParameter"
    assert "ReturnFormat" in error.message and "alpha" in error.message


def test_unknown_return_format_refused() -> None:
    error = refusal(encode_image, np.zeros((40, 40, 3), np.uint8), "GIF")
    assert (error.code, error.field) == ("InvalidParameter", "ReturnFormat")
