"""Which draft or annotation of a task holds the annotator's strokes, and what it holds.

Label Studio 1.23.2 autosaves the current user's strokes as a draft
(``tasks[0].drafts``, fresh strokes as ``touches``) and keeps submitted work as
annotations (strokes as ``rle``). The strokes are read from the newest draft
that holds any, else from the newest non-cancelled annotation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from ml_backend.errors import invalid_parameter
from ml_backend.labelstudio.config import ScribbleConfig
from ml_backend.labelstudio.regions import (
    BRUSH_TYPE,
    MAX_STROKE_REGIONS,
    as_dict,
    as_list,
    labelled_brush,
    region_kind,
    stroke_masks,
    stroke_regions,
    strokes_from_results,
    union_into,
)

_OLDEST = datetime.min.replace(tzinfo=timezone.utc)


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


def _has_stroke_regions(item: dict, config: ScribbleConfig, name: str) -> bool:
    return bool(stroke_regions(as_list(item.get("result"), f"{name}.result"), config, f"{name}.result"))


def _chosen_item(task: dict, config: ScribbleConfig, name: str) -> tuple[dict | None, str]:
    """The draft or annotation the strokes are read from (see ``strokes_from_task``), and its field name."""
    task = as_dict(task, name)
    drafts = [
        (index, as_dict(draft, f"{name}.drafts[{index}]"))
        for index, draft in enumerate(as_list(task.get("drafts"), f"{name}.drafts"))
    ]
    if drafts:
        index, newest = _newest_first(drafts)[0]
        draft_name = f"{name}.drafts[{index}]"
        if _has_stroke_regions(newest, config, draft_name):
            return newest, draft_name

    annotations = []
    for index, annotation in enumerate(as_list(task.get("annotations"), f"{name}.annotations")):
        annotation = as_dict(annotation, f"{name}.annotations[{index}]")
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


def _accepted_masks(
    results: list, config: ScribbleConfig, height: int, width: int, results_name: str
) -> dict[str, list[np.ndarray]]:
    """class -> the masks of the result control's brush regions, oldest first."""
    accepted: dict[str, list[np.ndarray]] = {}
    if config.output_control in config.stroke_controls:
        return accepted  # one control for strokes and results: every region is a stroke
    count = 0
    for index, region in enumerate(results):
        region_name = f"{results_name}[{index}]"
        region = as_dict(region, region_name)
        if region_kind(region) != BRUSH_TYPE or region.get("from_name") != config.output_control:
            continue
        if region.get("to_name") not in (None, config.image_name):
            continue
        count += 1
        if count > MAX_STROKE_REGIONS:
            raise invalid_parameter(results_name, f"holds more than {MAX_STROKE_REGIONS} result brush regions")
        labels, mask = labelled_brush(region, region_name, tuple(config.class_labels), height, width)
        for label in labels:
            accepted.setdefault(label, []).append(mask)
    return accepted


def task_state(
    task: dict, config: ScribbleConfig, height: int, width: int, name: str = "tasks[0]"
) -> TaskState:
    """Strokes (each region and per label), and accepted masks, of the item ``strokes_from_task`` reads."""
    item, item_name = _chosen_item(task, config, name)
    if item is None:
        return TaskState({}, [], {}, None)
    results_name = f"{item_name}.result"
    results = as_list(item.get("result"), results_name)
    strokes: dict[str, np.ndarray] = {}
    regions: list[tuple[str, np.ndarray]] = []
    for label, mask in stroke_masks(results, config, height, width, results_name):
        union_into(strokes, label, mask)
        regions.append((label, mask))
    return TaskState(strokes, regions, _accepted_masks(results, config, height, width, results_name), item_name)
