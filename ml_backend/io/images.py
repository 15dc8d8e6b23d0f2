"""Decode images, masks and stroke images from bytes; encode results.

Limits follow the original InteractiveScribbleSegmentation API: JPG/JPEG/PNG/BMP/WEBP,
images at most 10 MB, masks and stroke images at most 5 MB, each side 32..4096 pixels.
Every refusal is a ``ClientError`` naming the field and the limit it broke.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator

import cv2
import numpy as np
from PIL import BmpImagePlugin, ExifTags, Image, ImageOps, JpegImagePlugin, PngImagePlugin, WebPImagePlugin

from ml_backend.errors import ClientError, ErrorCode

MEGABYTE = 1024 * 1024
IMAGE_MAX_BYTES = 10 * MEGABYTE
MASK_MAX_BYTES = 5 * MEGABYTE
MIN_SIDE = 32
MAX_SIDE = 4096
ACCEPTED_FORMATS = ("JPG", "JPEG", "PNG", "BMP", "WEBP")
PNG_COMPRESSION_LEVEL = 1  # results are transient: speed matters more than size
JPEG_QUALITY = 95

# Plugin classes are instantiated directly instead of going through Image.open: it
# reads the header just the same, but Image.open's decompression-bomb check would
# raise or warn before we could report the claimed size in our own terms.
_PLUGIN_BY_FORMAT: dict[str, type[Image.Image]] = {
    "JPEG": JpegImagePlugin.JpegImageFile,
    "PNG": PngImagePlugin.PngImageFile,
    "BMP": BmpImagePlugin.BmpImageFile,
    "WEBP": WebPImagePlugin.WebPImageFile,
}
# EXIF orientations that swap width and height (transpose, rotate 90/270, transverse).
_SIDE_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}


def image_format_of(data: bytes) -> str | None:
    """The accepted format the magic bytes announce ("JPEG", "PNG", "BMP", "WEBP"), else None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"BM"):
        return "BMP"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def decode_image(data: bytes, field: str = "ImageUrl", max_bytes: int = IMAGE_MAX_BYTES) -> np.ndarray:
    """Decode an image upload to HxWx3 uint8 RGB, upright as EXIF says a person sees it."""
    with _open_checked(data, field, max_bytes) as image:
        _load_pixels(image, field)
        rgb, _alpha = _pixels(image)
    return rgb


def decode_mask(
    data: bytes,
    field: str,
    image_shape: tuple[int, int],
    max_bytes: int = MASK_MAX_BYTES,
    channels: str = "grey",
) -> np.ndarray:
    """Decode a mask or stroke image that must match the image's HxW.

    ``channels="grey"``: HxW uint8, the brightest colour channel; where the file has a
    meaningful alpha channel (not all opaque) the alpha itself, so transparent stroke
    images and the API's own ``rgb_alpha`` results work whatever colour they are drawn in.
    ``channels="rgb"``: HxWx3 uint8 (the integrated mask: R = mask, G = positive,
    B = negative), transparent pixels counted as 0.
    """
    if channels not in ("grey", "rgb"):
        raise ValueError(f"channels must be 'grey' or 'rgb', not {channels!r}")
    with _open_checked(data, field, max_bytes) as image:
        width, height = _upright_size(image, field)
        image_height, image_width = image_shape[:2]
        if (height, width) != (image_height, image_width):
            raise ClientError(
                ErrorCode.INVALID_IMAGE_RESOLUTION,
                f"{field}: resolution {width}x{height} differs from the image's "
                f"{image_width}x{image_height}; masks and stroke images must match the image",
                field=field,
            )
        _load_pixels(image, field)
        rgb, alpha = _pixels(image)
    if alpha is not None and bool((alpha == 255).all()):
        alpha = None  # an opaque alpha channel says nothing; the colours carry the mask
    if channels == "rgb":
        if alpha is None:
            return rgb
        return ((rgb.astype(np.uint16) * alpha[..., None].astype(np.uint16) + 127) // 255).astype(np.uint8)
    if alpha is not None:
        return alpha
    return rgb.max(axis=2)


def encode_image(array: np.ndarray, image_format: str) -> bytes:
    """Encode HxW (grey), HxWx3 (RGB) or HxWx4 (RGBA) uint8 as PNG or JPG."""
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.dtype != np.uint8:
        raise ValueError(f"encode_image needs uint8 or bool pixels, got {array.dtype}")
    normalised_format = image_format.upper()
    if normalised_format not in ("PNG", "JPG", "JPEG"):
        raise ClientError(
            ErrorCode.INVALID_PARAMETER,
            f"ReturnFormat: {image_format!r} is not supported; use PNG or JPG",
            field="ReturnFormat",
        )
    channel_count = 1 if array.ndim == 2 else array.shape[2]
    if array.ndim not in (2, 3) or channel_count not in (1, 3, 4):
        raise ValueError(f"encode_image needs HxW, HxWx3 or HxWx4 pixels, got shape {array.shape}")
    if normalised_format != "PNG" and channel_count == 4:
        raise ClientError(
            ErrorCode.INVALID_PARAMETER,
            "ReturnFormat/ReturnForm: JPG cannot carry alpha; use ReturnFormat=PNG "
            "or ReturnForm=only_alpha or white_background",
            field="ReturnFormat",
        )
    if channel_count == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    elif channel_count == 4:
        array = cv2.cvtColor(array, cv2.COLOR_RGBA2BGRA)
    if normalised_format == "PNG":
        extension, parameters = ".png", [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION_LEVEL]
    else:
        extension, parameters = ".jpg", [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    succeeded, encoded = cv2.imencode(extension, np.ascontiguousarray(array), parameters)
    if not succeeded:
        raise RuntimeError(f"OpenCV could not encode a {array.shape} array as {normalised_format}")
    return encoded.tobytes()


def _open_checked(data: bytes, field: str, max_bytes: int) -> Image.Image:
    """Open the header only, after the byte-level checks; refuse sizes outside the limits."""
    if not data:
        raise ClientError(ErrorCode.INVALID_IMAGE_CONTENT, f"{field}: the file is empty", field=field)
    if len(data) > max_bytes:
        raise file_too_large(field, max_bytes, len(data))
    image_format = image_format_of(data)
    if image_format is None:
        raise ClientError(
            ErrorCode.INVALID_IMAGE_FORMAT,
            f"{field}: the file is not an accepted image format; accepted: {', '.join(ACCEPTED_FORMATS)}",
            field=field,
        )
    with _refusing_bad_content(field, "header claims", f"the {image_format} header cannot be read"):
        image = _PLUGIN_BY_FORMAT[image_format](io.BytesIO(data))
    width, height = image.size
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        image.close()
        raise _resolution_error(field, f"the image is {width}x{height} pixels")
    return image


def _resolution_error(field: str, what: str) -> ClientError:
    return ClientError(
        ErrorCode.INVALID_IMAGE_RESOLUTION,
        f"{field}: {what}; each side must be between {MIN_SIDE} and {MAX_SIDE} pixels",
        field=field,
    )


@contextlib.contextmanager
def _refusing_bad_content(field: str, claimant: str, unreadable: str) -> Iterator[None]:
    """Turns Pillow's failures inside the block into the client's error: too many pixels, or unreadable."""
    try:
        yield
    except Image.DecompressionBombError:
        raise _resolution_error(field, f"the {claimant} far more pixels than allowed") from None
    except Exception as error:
        raise ClientError(ErrorCode.INVALID_IMAGE_CONTENT, f"{field}: {unreadable} ({error})", field=field) from None


def file_too_large(field: str, max_bytes: int, size: int) -> ClientError:
    """The error for an input of ``size`` bytes over its limit of ``max_bytes``."""
    return ClientError(
        ErrorCode.INVALID_FILE_SIZE,
        f"{field}: the file is {size / MEGABYTE:.1f} MB; at most {max_bytes / MEGABYTE:g} MB is allowed",
        field=field,
    )


def _upright_size(image: Image.Image, field: str) -> tuple[int, int]:
    """Width and height after EXIF orientation (PNG may decode pixels to find its EXIF)."""
    width, height = image.size
    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception as error:
        raise ClientError(
            ErrorCode.INVALID_IMAGE_CONTENT, f"{field}: the file is corrupt ({error})", field=field
        ) from None
    return (height, width) if orientation in _SIDE_SWAPPING_ORIENTATIONS else (width, height)


def _load_pixels(image: Image.Image, field: str) -> None:
    with _refusing_bad_content(field, "file claims", "the file is truncated or corrupt"):
        image.load()
        ImageOps.exif_transpose(image, in_place=True)


def _pixels(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """HxWx3 uint8 RGB from any mode (grey, palette, 1-bit, 16-bit, CMYK), plus the
    alpha channel as HxW uint8 when the file has one, else None."""
    if image.mode.startswith("I"):
        # 16-bit grey (I;16*) or 32-bit I from 16-bit files: keep the top 8 of 16 bits,
        # where Image.convert would clip everything above 255 to white.
        grey = (np.clip(np.asarray(image, dtype=np.int64), 0, 65535) >> 8).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2), None
    if image.mode == "F":
        grey = np.clip(np.asarray(image, dtype=np.float32), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2), None
    has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        # Through RGBA so palette transparency is honoured instead of warned about.
        rgba = np.asarray(image.convert("RGBA") if image.mode != "RGBA" else image)
        return rgba[..., :3].copy(), rgba[..., 3].copy()
    rgb = image.convert("RGB") if image.mode != "RGB" else image
    return np.array(rgb, dtype=np.uint8), None
