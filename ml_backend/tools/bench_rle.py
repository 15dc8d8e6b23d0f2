"""Times our brush RLE codec against label_studio_sdk's on a worst-case mask."""

from __future__ import annotations

import time

import numpy as np

from ..labelstudio.rle import CHANNELS, decode_rle, encode_mask


def _noisy_mask(height: int, width: int, seed: int = 0) -> np.ndarray:
    # Independent random pixels: the most runs, the slowest case for run-length coding.
    return (np.random.default_rng(seed).random((height, width)) < 0.5).astype(np.uint8) * 255


def _best_time(function, repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - started)
    return best, result


def benchmark_rle(height: int = 768, width: int = 1024, repeats: int = 3) -> dict:
    """Times our codec against label_studio_sdk's on a worst-case noisy mask (best of ``repeats``)."""
    from label_studio_sdk.converter import brush

    mask = _noisy_mask(height, width)
    ours_encode, our_rle = _best_time(lambda: encode_mask(mask), repeats)
    reference_encode, reference_rle = _best_time(lambda: brush.mask2rle(mask), repeats)
    ours_decode, our_alpha = _best_time(lambda: decode_rle(reference_rle, height, width), repeats)
    reference_decode, reference_flat = _best_time(lambda: brush.decode_rle(our_rle), repeats)
    identical = our_rle == reference_rle and np.array_equal(
        our_alpha, np.asarray(reference_flat).reshape(height, width, CHANNELS)[:, :, 3]
    )
    return {
        "height": height,
        "width": width,
        "repeats": repeats,
        "rle_bytes": len(our_rle),
        "identical": bool(identical),
        "encode_seconds": {"ours": ours_encode, "reference": reference_encode},
        "decode_seconds": {"ours": ours_decode, "reference": reference_decode},
        "encode_speedup": reference_encode / ours_encode,
        "decode_speedup": reference_decode / ours_decode,
    }
