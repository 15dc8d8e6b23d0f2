"""Translates Label Studio request pieces into per-class scribbles and prompts, and masks back.

Pure functions over the JSON Label Studio 1.23.2 sends (see docs/label-studio.md):

- strokes come from the task: the current user's newest autosaved draft
  (``tasks[0].drafts``, fresh strokes as ``touches``) or else the newest
  non-cancelled annotation (strokes as ``rle``);
- the interactive context (``params.context``) holds the smart keypoints or
  rectangle that triggered the call, and maybe brush regions;
- a returned mask is one ``brushlabels`` region with a 0/255 RGBA RLE.

Every malformed piece raises ``ClientError`` (``InvalidParameter``) naming the
field, e.g. ``tasks[0].drafts[0].result[3].value.touches[1].relativePoints``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from ml_backend.errors import invalid_parameter
from ml_backend.labelstudio.config import ScribbleConfig
from ml_backend.labelstudio.rle import encode_mask
from ml_backend.labelstudio.touches import rasterize_brush_value

BRUSH_TYPE = "brushlabels"
POINT_TYPE = "keypointlabels"
BOX_TYPE = "rectanglelabels"
_OLDEST = datetime.min.replace(tzinfo=timezone.utc)
# Each stroke region is decoded to a full-size mask; far more than anyone paints on
# one task, far fewer than a body of empty regions could make the server decode.
MAX_STROKE_REGIONS = 256


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


# --------------------------------------------------------------------------- helpers


def _as_dict(value: object, name: str) -> dict:
    if not isinstance(value, dict):
        raise invalid_parameter(name, f"must be an object, got {type(value).__name__}")
    return value


def _as_list(value: object, name: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid_parameter(name, f"must be a list, got {type(value).__name__}")
    return value


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid_parameter(name, f"must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise invalid_parameter(name, f"must be finite, got {value!r}")
    return float(value)


def _kind(region: dict) -> str:
    kind = region.get("type")
    return kind.lower() if isinstance(kind, str) else ""


def _region_labels(value: dict, key: str, name: str, allowed: tuple[str, ...]) -> list[str]:
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


def _timestamp(item: dict) -> datetime:
    for key in ("updated_at", "created_at"):
        text = item.get(key)
        if isinstance(text, str):
            try:
                moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                continue
            return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return _OLDEST


def _newest_first(items: list[tuple[int, dict]]) -> list[tuple[int, dict]]:
    def key(entry: tuple[int, dict]) -> tuple:
        index, item = entry
        identifier = item.get("id")
        number = identifier if isinstance(identifier, int) and not isinstance(identifier, bool) else -1
        return (_timestamp(item), number, index)

    return sorted(items, key=key, reverse=True)


def _check_region_size(region: dict, name: str, height: int, width: int) -> None:
    for key, expected in (("original_width", width), ("original_height", height)):
        if region.get(key) is None:
            continue
        actual = region[key]
        if isinstance(actual, bool) or not isinstance(actual, (int, float)) or actual != expected:
            raise invalid_parameter(
                f"{name}.{key}", f"is {actual!r}, but the image is {width}x{height} pixels: the RLE would not fit it"
            )


def _union_into(strokes: dict[str, np.ndarray], label: str, mask: np.ndarray) -> None:
    if label in strokes:
        strokes[label] = strokes[label] | mask
    else:
        strokes[label] = mask.copy()


def merge_strokes(*stroke_maps: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The per-label union of several label -> mask maps."""
    merged: dict[str, np.ndarray] = {}
    for strokes in stroke_maps:
        for label, mask in strokes.items():
            _union_into(merged, label, np.asarray(mask, bool))
    return merged


# --------------------------------------------------------------------------- strokes


def _stroke_regions(results: list, config: ScribbleConfig, name: str) -> list[tuple[str, dict]]:
    """(field name, region) of every stroke brush region in a result list."""
    regions = []
    for index, region in enumerate(results):
        region_name = f"{name}[{index}]"
        region = _as_dict(region, region_name)
        if _kind(region) != BRUSH_TYPE or not config.is_stroke_region(region.get("from_name")):
            continue
        to_name = region.get("to_name")
        if to_name is not None and to_name != config.image_name:
            continue
        regions.append((region_name, region))
        if len(regions) > MAX_STROKE_REGIONS:
            raise invalid_parameter(name, f"holds more than {MAX_STROKE_REGIONS} stroke brush regions")
    return regions


def strokes_from_results(
    results: list, config: ScribbleConfig, height: int, width: int, name: str = "result"
) -> dict[str, np.ndarray]:
    """label -> HxW bool union of the stroke brush regions in a result list."""
    allowed = tuple(dict.fromkeys(config.class_labels + config.negative_labels + config.stroke_labels))
    strokes: dict[str, np.ndarray] = {}
    for region_name, region in _stroke_regions(_as_list(results, name), config, name):
        value = _as_dict(region.get("value"), f"{region_name}.value")
        labels = _region_labels(value, BRUSH_TYPE, f"{region_name}.value", allowed)
        if not labels:
            continue  # an unlabelled region says nothing about any class
        if value.get("rle"):
            _check_region_size(region, region_name, height, width)
        mask = rasterize_brush_value(value, height, width, f"{region_name}.value")
        for label in labels:
            _union_into(strokes, label, mask)
    return strokes


def _has_stroke_regions(item: dict, config: ScribbleConfig, name: str) -> bool:
    return bool(_stroke_regions(_as_list(item.get("result"), f"{name}.result"), config, f"{name}.result"))


def _chosen_item(task: dict, config: ScribbleConfig, name: str) -> tuple[dict | None, str]:
    """The draft or annotation the strokes are read from (see ``strokes_from_task``), and its field name."""
    task = _as_dict(task, name)
    drafts = [
        (index, _as_dict(draft, f"{name}.drafts[{index}]"))
        for index, draft in enumerate(_as_list(task.get("drafts"), f"{name}.drafts"))
    ]
    if drafts:
        index, newest = _newest_first(drafts)[0]
        draft_name = f"{name}.drafts[{index}]"
        if _has_stroke_regions(newest, config, draft_name):
            return newest, draft_name

    annotations = []
    for index, annotation in enumerate(_as_list(task.get("annotations"), f"{name}.annotations")):
        annotation = _as_dict(annotation, f"{name}.annotations[{index}]")
        if annotation.get("was_cancelled"):
            continue
        annotations.append((index, annotation))
    if not annotations:
        return None, name
    index, newest = _newest_first(annotations)[0]
    return newest, f"{name}.annotations[{index}]"


def strokes_from_task(
    task: dict,
    config: ScribbleConfig,
    height: int,
    width: int,
    name: str = "tasks[0]",
) -> dict[str, np.ndarray]:
    """label -> HxW bool strokes of the task as the current user sees it.

    The newest draft if it holds stroke brush regions (Label Studio autosaves
    drafts while painting); else the newest non-cancelled annotation; else
    nothing. Nobody's drafts are filtered out: Label Studio sends only the
    requesting user's drafts, and /predict does not say who the user is.
    """
    item, item_name = _chosen_item(task, config, name)
    if item is None:
        return {}
    return strokes_from_results(item.get("result"), config, height, width, f"{item_name}.result")


@dataclass
class TaskState:
    """What the annotator's draft (or annotation) holds, read once.

    ``strokes``: label -> union of that label's stroke regions. ``stroke_regions``:
    (label, HxW bool) per stroke region and label. ``accepted``: class -> the
    accepted masks of the result control, oldest first (empty when strokes and
    results share one control). ``source`` names the draft or annotation read.
    """

    strokes: dict[str, np.ndarray]
    stroke_regions: list[tuple[str, np.ndarray]]
    accepted: dict[str, list[np.ndarray]]
    source: str | None


def task_state(
    task: dict, config: ScribbleConfig, height: int, width: int, name: str = "tasks[0]"
) -> TaskState:
    """Strokes (each region and per label), and accepted masks, of the item ``strokes_from_task`` reads."""
    item, item_name = _chosen_item(task, config, name)
    if item is None:
        return TaskState({}, [], {}, None)
    results_name = f"{item_name}.result"
    results = _as_list(item.get("result"), results_name)
    allowed = tuple(dict.fromkeys(config.class_labels + config.negative_labels + config.stroke_labels))
    strokes: dict[str, np.ndarray] = {}
    regions: list[tuple[str, np.ndarray]] = []
    for region_name, region in _stroke_regions(results, config, results_name):
        labels, mask = _labelled_brush(region, region_name, allowed, height, width)
        for label in labels:
            _union_into(strokes, label, mask)
            regions.append((label, mask))
    accepted: dict[str, list[np.ndarray]] = {}
    if config.output_control not in config.stroke_controls:
        count = 0
        for index, region in enumerate(results):
            region_name = f"{results_name}[{index}]"
            region = _as_dict(region, region_name)
            if _kind(region) != BRUSH_TYPE or region.get("from_name") != config.output_control:
                continue
            if region.get("to_name") not in (None, config.image_name):
                continue
            count += 1
            if count > MAX_STROKE_REGIONS:
                raise invalid_parameter(results_name, f"holds more than {MAX_STROKE_REGIONS} result brush regions")
            labels, mask = _labelled_brush(region, region_name, tuple(config.class_labels), height, width)
            for label in labels:
                accepted.setdefault(label, []).append(mask)
    return TaskState(strokes, regions, accepted, item_name)



def _labelled_brush(
    region: dict, region_name: str, allowed: tuple[str, ...], height: int, width: int
) -> tuple[list[str], np.ndarray | None]:
    """A brush region's labels among ``allowed`` and its mask (None, unpainted, when it has none)."""
    value = _as_dict(region.get("value"), f"{region_name}.value")
    labels = _region_labels(value, BRUSH_TYPE, f"{region_name}.value", allowed)
    if not labels:
        return [], None
    if value.get("rle"):
        _check_region_size(region, region_name, height, width)
    return labels, rasterize_brush_value(value, height, width, f"{region_name}.value")

# --------------------------------------------------------------------------- context


def _first_label(value: dict, key: str, name: str, config: ScribbleConfig) -> str:
    allowed = tuple(dict.fromkeys(config.class_labels + config.prompt_labels + config.negative_labels))
    labels = _region_labels(value, key, name, allowed)
    if not labels:
        raise invalid_parameter(f"{name}.{key}", "is missing: a click or box must carry the class it is for")
    return labels[0]


def _box_pixels(value: dict, name: str, height: int, width: int) -> np.ndarray:
    x, y = _number(value.get("x"), f"{name}.x"), _number(value.get("y"), f"{name}.y")
    box_width, box_height = _number(value.get("width"), f"{name}.width"), _number(value.get("height"), f"{name}.height")
    rotation = _number(value.get("rotation", 0) or 0, f"{name}.rotation")
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
    context = _as_dict(context, name)
    results = _as_list(context.get("result"), f"{name}.result")
    prompts: list[tuple[str, str, dict, str, dict]] = []  # (kind, label, value, field name, item)
    for index, item in enumerate(results):
        item_name = f"{name}.result[{index}]"
        item = _as_dict(item, item_name)
        kind = _kind(item)
        if kind not in (POINT_TYPE, BOX_TYPE):
            continue
        to_name = item.get("to_name")
        if to_name is not None and to_name != config.image_name:
            continue
        value = _as_dict(item.get("value"), f"{item_name}.value")
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
            x = _number(value.get("x"), f"{item_name}.value.x")
            y = _number(value.get("y"), f"{item_name}.value.y")
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


# --------------------------------------------------------------------------- classes and results


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
