"""The regions of a Label Studio result list: JSON fields, labels, and painted brush masks.

Label Studio 1.23.2 sends a draft's, an annotation's or the interactive
context's regions as a ``result`` list (see docs/label-studio.md). This module
reads them: the JSON checks every mapping module shares (objects, lists, finite
numbers, a region's type and labels against the labeling config), and the
stroke brush regions, each turned into an HxW bool mask.

Every malformed piece raises ``ClientError`` (``InvalidParameter``) naming the
field, e.g. ``tasks[0].drafts[0].result[3].value.touches[1].relativePoints``.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np

from ml_backend.errors import invalid_parameter
from ml_backend.labelstudio.config import ScribbleConfig
from ml_backend.labelstudio.touches import rasterize_brush_value

BRUSH_TYPE = "brushlabels"
POINT_TYPE = "keypointlabels"
BOX_TYPE = "rectanglelabels"
# Each stroke region is decoded to a full-size mask; far more than anyone paints on
# one task, far fewer than a body of empty regions could make the server decode.
MAX_STROKE_REGIONS = 256


def as_dict(value: object, name: str) -> dict:
    if not isinstance(value, dict):
        raise invalid_parameter(name, f"must be an object, got {type(value).__name__}")
    return value


def as_list(value: object, name: str) -> list:
    """The list at ``name``; a missing one (None) is empty."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid_parameter(name, f"must be a list, got {type(value).__name__}")
    return value


def finite_number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid_parameter(name, f"must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise invalid_parameter(name, f"must be finite, got {value!r}")
    return float(value)


def region_kind(region: dict) -> str:
    """The region's ``type`` in lower case (``brushlabels``, ...), or "" when it has none."""
    kind = region.get("type")
    return kind.lower() if isinstance(kind, str) else ""


def region_labels(value: dict, key: str, name: str, allowed: tuple[str, ...]) -> list[str]:
    """The labels under ``value[key]``, each checked to be one of ``allowed``."""
    labels = value.get(key)
    if labels is None:
        return []
    if not isinstance(labels, list):
        raise invalid_parameter(f"{name}.{key}", f"must be a list of labels, got {type(labels).__name__}")
    for index, label in enumerate(labels):
        if not isinstance(label, str):
            raise invalid_parameter(f"{name}.{key}[{index}]", f"must be a label name, got {type(label).__name__}")
        if label not in allowed:
            raise invalid_parameter(
                f"{name}.{key}[{index}]", f"label {label!r} is not in the labeling config (labels: {list(allowed)})"
            )
    return labels


def _check_region_size(region: dict, name: str, height: int, width: int) -> None:
    for key, expected in (("original_width", width), ("original_height", height)):
        if region.get(key) is None:
            continue
        actual = region[key]
        if isinstance(actual, bool) or not isinstance(actual, (int, float)) or actual != expected:
            raise invalid_parameter(
                f"{name}.{key}", f"is {actual!r}, but the image is {width}x{height} pixels: the RLE would not fit it"
            )


def labelled_brush(
    region: dict, region_name: str, allowed: tuple[str, ...], height: int, width: int
) -> tuple[list[str], np.ndarray | None]:
    """A brush region's labels among ``allowed`` and its mask (None, unpainted, when it has none)."""
    value = as_dict(region.get("value"), f"{region_name}.value")
    labels = region_labels(value, BRUSH_TYPE, f"{region_name}.value", allowed)
    if not labels:
        return [], None  # an unlabelled region says nothing about any class
    if value.get("rle"):
        _check_region_size(region, region_name, height, width)
    return labels, rasterize_brush_value(value, height, width, f"{region_name}.value")


def stroke_regions(results: list, config: ScribbleConfig, name: str) -> list[tuple[str, dict]]:
    """(field name, region) of every stroke brush region in a result list."""
    regions = []
    for index, region in enumerate(results):
        region_name = f"{name}[{index}]"
        region = as_dict(region, region_name)
        if region_kind(region) != BRUSH_TYPE or not config.is_stroke_region(region.get("from_name")):
            continue
        to_name = region.get("to_name")
        if to_name is not None and to_name != config.image_name:
            continue
        regions.append((region_name, region))
        if len(regions) > MAX_STROKE_REGIONS:
            raise invalid_parameter(name, f"holds more than {MAX_STROKE_REGIONS} stroke brush regions")
    return regions


def stroke_masks(
    results: object, config: ScribbleConfig, height: int, width: int, name: str
) -> Iterator[tuple[str, np.ndarray]]:
    """(label, HxW bool) for every label of every stroke brush region in a result list."""
    allowed = tuple(dict.fromkeys(config.class_labels + config.negative_labels + config.stroke_labels))
    for region_name, region in stroke_regions(as_list(results, name), config, name):
        labels, mask = labelled_brush(region, region_name, allowed, height, width)
        for label in labels:
            yield label, mask


def union_into(strokes: dict[str, np.ndarray], label: str, mask: np.ndarray) -> None:
    """Adds ``mask`` to the label's strokes, never changing ``mask`` itself."""
    if label in strokes:
        strokes[label] = strokes[label] | mask
    else:
        strokes[label] = mask.copy()


def merge_strokes(*stroke_maps: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The per-label union of several label -> mask maps."""
    merged: dict[str, np.ndarray] = {}
    for strokes in stroke_maps:
        for label, mask in strokes.items():
            union_into(merged, label, np.asarray(mask, bool))
    return merged


def strokes_from_results(
    results: list, config: ScribbleConfig, height: int, width: int, name: str = "result"
) -> dict[str, np.ndarray]:
    """label -> HxW bool union of the stroke brush regions in a result list."""
    strokes: dict[str, np.ndarray] = {}
    for label, mask in stroke_masks(results, config, height, width, name):
        union_into(strokes, label, mask)
    return strokes
