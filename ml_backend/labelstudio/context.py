"""The interactive context of a Label Studio call: the class asked for, clicks, a box, strokes.

A smart keypoint or rectangle makes Label Studio 1.23.2 call /predict with
``params.context``: its ``result`` list holds the clicks or the rectangle that
triggered the call (and maybe brush regions). This module turns it into pixel
prompts for one class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ml_backend.errors import invalid_parameter
from ml_backend.labelstudio.config import ScribbleConfig
from ml_backend.labelstudio.regions import (
    BOX_TYPE,
    POINT_TYPE,
    as_dict,
    as_list,
    finite_number,
    region_kind,
    region_labels,
    strokes_from_results,
)


@dataclass
class ContextPrompts:
    """What the interactive context says: the class asked for, clicks, a box, strokes.

    ``points`` are (x, y) pixels, ``point_labels`` 1 = on the object, 0 = not.
    ``box`` is (x0, y0, x1, y1) pixels. ``strokes`` are brush regions that came
    in the context itself, label -> HxW bool.
    """

    target_label: str | None
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    point_labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int32))
    box: np.ndarray | None = None
    strokes: dict[str, np.ndarray] = field(default_factory=dict)


def _first_label(value: dict, key: str, name: str, config: ScribbleConfig) -> str:
    allowed = tuple(dict.fromkeys(config.class_labels + config.prompt_labels + config.negative_labels))
    labels = region_labels(value, key, name, allowed)
    if not labels:
        raise invalid_parameter(f"{name}.{key}", "is missing: a click or box must carry the class it is for")
    return labels[0]


def _box_pixels(value: dict, name: str, height: int, width: int) -> np.ndarray:
    x, y = finite_number(value.get("x"), f"{name}.x"), finite_number(value.get("y"), f"{name}.y")
    box_width = finite_number(value.get("width"), f"{name}.width")
    box_height = finite_number(value.get("height"), f"{name}.height")
    rotation = finite_number(value.get("rotation", 0) or 0, f"{name}.rotation")
    if box_width < 0 or box_height < 0:
        raise invalid_parameter(name, "width and height must not be negative")
    left, top = x * width / 100, y * height / 100
    right, bottom = box_width * width / 100, box_height * height / 100
    # Label Studio rotates a rectangle about its top-left corner; use the rotated corners' bounds.
    angle = math.radians(rotation)
    cos, sin = math.cos(angle), math.sin(angle)
    corners = np.array([[0, 0], [right, 0], [right, bottom], [0, bottom]], np.float64)
    xs = left + corners[:, 0] * cos - corners[:, 1] * sin
    ys = top + corners[:, 0] * sin + corners[:, 1] * cos
    box = np.array(
        [
            np.clip(xs.min(), 0, width),
            np.clip(ys.min(), 0, height),
            np.clip(xs.max(), 0, width),
            np.clip(ys.max(), 0, height),
        ],
        np.float32,
    )
    if box[2] - box[0] < 1 or box[3] - box[1] < 1:
        raise invalid_parameter(name, f"the rectangle covers no pixel of the {width}x{height} image")
    return box


def context_prompts(
    context: dict | None, config: ScribbleConfig, height: int, width: int, name: str = "context"
) -> ContextPrompts:
    """The clicks, box and brush strokes of an interactive request's ``params.context``.

    The target class is the label of the context's keypoints and rectangles
    (the last one's if they differ). Keypoints of the target class are positive
    unless ``is_positive`` is false; keypoints of another class say "not this
    object" and become negative. The box is the last target-class rectangle.
    """
    if context is None:
        return ContextPrompts(target_label=None)
    context = as_dict(context, name)
    results = as_list(context.get("result"), f"{name}.result")
    prompts: list[tuple[str, str, dict, str, dict]] = []  # (kind, label, value, field name, item)
    for index, item in enumerate(results):
        item_name = f"{name}.result[{index}]"
        item = as_dict(item, item_name)
        kind = region_kind(item)
        if kind not in (POINT_TYPE, BOX_TYPE):
            continue
        to_name = item.get("to_name")
        if to_name is not None and to_name != config.image_name:
            continue
        value = as_dict(item.get("value"), f"{item_name}.value")
        label = _first_label(value, kind, f"{item_name}.value", config)
        prompts.append((kind, label, value, item_name, item))

    strokes = strokes_from_results(results, config, height, width, f"{name}.result")
    if not prompts:
        return ContextPrompts(target_label=None, strokes=strokes)

    target_kind, target, _, target_name, _ = prompts[-1]
    if target not in config.class_labels:
        raise invalid_parameter(
            f"{target_name}.value.{target_kind}",
            f"label {target!r} is not a class the backend can segment (classes: {list(config.class_labels)})",
        )
    points, labels, box = [], [], None
    for kind, label, value, item_name, item in prompts:
        if kind == POINT_TYPE:
            x = finite_number(value.get("x"), f"{item_name}.value.x")
            y = finite_number(value.get("y"), f"{item_name}.value.y")
            points.append((min(max(x * width / 100, 0.0), width), min(max(y * height / 100, 0.0), height)))
            positive = item.get("is_positive")
            if positive is None:
                positive = True  # Label Studio omits it on plain (non-Alt) clicks of older versions
            if not isinstance(positive, bool):
                raise invalid_parameter(f"{item_name}.is_positive", f"must be true or false, got {positive!r}")
            labels.append(1 if (label == target and positive) else 0)
        elif label == target:
            box = _box_pixels(value, f"{item_name}.value", height, width)
    return ContextPrompts(
        target_label=target,
        points=np.asarray(points, np.float32).reshape(-1, 2),
        point_labels=np.asarray(labels, np.int32),
        box=box,
        strokes=strokes,
    )
