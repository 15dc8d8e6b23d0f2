"""Per-class scribbles for the engine, and an engine's mask back as a Label Studio region.

The rest of the Label Studio translation reads requests: ``regions`` (result
lists and brush masks), ``task_strokes`` (the draft or annotation holding the
strokes) and ``context`` (the clicks and box of an interactive call). Here the
strokes become one class's positive and negative scribbles, and a mask becomes
one ``brushlabels`` region with a 0/255 RGBA RLE.
"""

from __future__ import annotations

import math

import numpy as np

from ml_backend.errors import invalid_parameter
from ml_backend.labelstudio.config import ScribbleConfig
from ml_backend.labelstudio.regions import BRUSH_TYPE
from ml_backend.labelstudio.rle import encode_mask


def class_scribbles(
    strokes: dict[str, np.ndarray],
    target_label: str,
    config: ScribbleConfig,
    shape: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(positive, negative) HxW bool scribbles for one class.

    Positive: the target label's strokes. Negative: strokes of the negative
    labels and of every other class (what belongs to another class is not this
    object). ``shape`` is needed only when ``strokes`` is empty.
    """
    if target_label not in config.class_labels:
        raise invalid_parameter(
            "target_label", f"label {target_label!r} is not one of the classes {list(config.class_labels)}"
        )
    shapes = {np.shape(mask) for mask in strokes.values()}
    if shape is not None:
        shapes.add(tuple(shape))
    if len(shapes) != 1:
        raise ValueError(
            f"strokes must share one HxW shape (and shape is needed without strokes), got {sorted(shapes)}"
        )
    (mask_shape,) = shapes
    positive = np.zeros(mask_shape, bool)
    negative = np.zeros(mask_shape, bool)
    for label, mask in strokes.items():
        if label == target_label:
            positive |= np.asarray(mask, bool)
        else:
            negative |= np.asarray(mask, bool)
    return positive, negative


def brush_result(mask: np.ndarray, label: str, config: ScribbleConfig, height: int, width: int, score: float) -> dict:
    """The brushlabels region Label Studio accepts for a mask (0/255 RLE on the image's grid)."""
    if label not in config.class_labels:
        raise invalid_parameter("label", f"label {label!r} is not one of the classes {list(config.class_labels)}")
    array = np.asarray(mask)
    if array.shape != (height, width):
        raise ValueError(f"mask is {array.shape}, the image is {height}x{width} (rows x columns)")
    score_value = float(score)
    if not math.isfinite(score_value):
        raise ValueError(f"score must be finite, got {score!r}")
    return {
        "from_name": config.output_control,
        "to_name": config.image_name,
        "type": BRUSH_TYPE,
        "original_width": int(width),
        "original_height": int(height),
        "image_rotation": 0,
        "value": {"format": "rle", "rle": encode_mask(array), "brushlabels": [label]},
        "score": score_value,
    }
