"""One segmentation from the inputs' bytes: decode, build prompts, segment, encode."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ...core.prompts import decode_integrated_mask
from ...core.segmenter import Segmenter
from ...cutout import CutoutOptions, CutoutResult, build_prompts, cut_out
from ...io.images import decode_image, decode_mask
from .models import InputBytes

STROKE_THRESHOLD = 128  # stroke and mask pixels count from half intensity up


def _stroke_map(source: InputBytes, image_shape: tuple[int, int]) -> np.ndarray:
    return decode_mask(source.data, source.field, image_shape) >= STROKE_THRESHOLD


def segment_inputs(segmenter: Segmenter, inputs: Mapping[str, InputBytes], options: CutoutOptions) -> CutoutResult:
    """Decode, build prompts, segment and encode. CPU-bound: runs in a worker thread."""
    image = decode_image(inputs["image"].data, inputs["image"].field)
    shape = image.shape[:2]
    maps: dict[str, np.ndarray | None] = {
        role: _stroke_map(inputs[role], shape) if role in inputs else None for role in ("mask", "positive", "negative")
    }
    if "integrated" in inputs:
        integrated = decode_mask(inputs["integrated"].data, inputs["integrated"].field, shape, channels="rgb")
        for role, channel in zip(("mask", "positive", "negative"), decode_integrated_mask(integrated)):
            maps[role] = channel if maps[role] is None else (maps[role] | channel)
    prompts = build_prompts(image, maps["positive"], maps["negative"], maps["mask"])
    return cut_out(segmenter, image, prompts, options)
