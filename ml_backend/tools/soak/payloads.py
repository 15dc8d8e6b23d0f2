"""The bodies Label Studio posts to ``/predict``: opening a task, and a click with the draft's strokes."""

from __future__ import annotations

import numpy as np

from ...config import labeling_config
from .scenes import Scene

PROJECT = "1.1700000000"
LABEL = "Object"
NEGATIVE_LABEL = "Background"


def _stroke(label: str, points: list[tuple[float, float]], scene: Scene, width_px: float, region_id: str) -> dict:
    relative: list[float] = []
    for x, y in points:
        relative += [100.0 * x / scene.width, 100.0 * y / scene.height]
    return {
        "id": region_id,
        "from_name": "strokes",
        "to_name": "image",
        "type": "brushlabels",
        "origin": "manual",
        "image_rotation": 0,
        "original_width": scene.width,
        "original_height": scene.height,
        "value": {
            "format": "rle",
            "brushlabels": [label],
            "touches": [
                {
                    "type": "add",
                    "relativePoints": relative,
                    "relativeStrokeWidth": 100.0 * width_px / scene.width,
                    "points": [],
                    "strokeWidth": width_px,
                    "eraserSize": 25,
                }
            ],
        },
    }


def draft_strokes(scene: Scene, round_index: int, rng: np.random.Generator) -> list[dict]:
    """A positive stroke inside the object and a background frame, shifted a little each round."""
    cx, cy = scene.centre
    ax, ay = scene.half_axes
    jitter = rng.normal(0, 0.02, 4)
    positive = [
        (cx - ax * (0.5 + jitter[0]), cy + ay * jitter[1]),
        (cx, cy + ay * (0.1 + jitter[2])),
        (cx + ax * (0.5 + jitter[3]), cy),
    ]
    margin = 0.04 + 0.01 * (round_index % 3)
    left, top = scene.width * margin, scene.height * margin
    right, bottom = scene.width * (1 - margin), scene.height * (1 - margin)
    frame = [(left, top), (right, top), (right, bottom), (left, bottom), (left, top)]
    brush = max(2.0, scene.width / 60)
    return [
        _stroke(LABEL, positive, scene, brush, "positive"),
        _stroke(NEGATIVE_LABEL, frame, scene, brush, "frame"),
    ]


def _keypoint(scene: Scene, x: float, y: float, positive: bool) -> dict:
    return {
        "id": f"click{int(x)}x{int(y)}",
        "from_name": "click",
        "to_name": "image",
        "type": "keypointlabels",
        "origin": "manual",
        "image_rotation": 0,
        "original_width": scene.width,
        "original_height": scene.height,
        "is_positive": positive,
        "value": {"x": 100.0 * x / scene.width, "y": 100.0 * y / scene.height, "width": 0.5, "keypointlabels": [LABEL]},
    }


def task_body(task_id: int, image_path: str, drafts: list[dict], context: dict | None, config: str) -> dict:
    return {
        "tasks": [
            {
                "id": task_id,
                "data": {"image": image_path},
                "annotations": [],
                "drafts": drafts,
                "predictions": [],
                "project": 1,
            }
        ],
        "project": PROJECT,
        "label_config": config,
        "params": {"login": None, "password": None, "context": context},
    }


def click_body(
    scene: Scene, image_path: str, task_id: int, round_index: int, rng: np.random.Generator, config_xml: str,
    annotator: int = 0,
) -> dict:
    """An interactive /predict: a click on the object (every third round also one beside it)
    and the draft's strokes, moved a little since the last round."""
    user = f"annotator{annotator}@example.com"
    strokes = draft_strokes(scene, round_index, rng)
    cx, cy = scene.centre
    clicks = [_keypoint(scene, cx + rng.normal(0, 2), cy + rng.normal(0, 2), True)]
    if round_index % 3 == 0:  # now and then "not here", outside the object
        clicks.append(_keypoint(scene, scene.width * 0.1, scene.height * 0.5, False))
    # The draft already holds the clicks, as Label Studio's does once saved after a
    # click: the backend answers without waiting for the next autosave.
    draft = {
        "id": task_id,
        "user": user,
        "created_username": f"{user}, {annotator + 1}",
        "result": strokes + clicks,
    }
    return task_body(task_id, image_path, [draft], {"result": clicks}, config_xml)


def label_config() -> str:
    """The labeling config the project recommends (ml_backend/config/labeling-config.xml)."""
    return labeling_config()
