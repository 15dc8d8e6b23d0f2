"""End to end through a real Label Studio 1.23.2 and our backend as a real server.

Label Studio (tests/support/label_studio.py) and `scribble-seg serve --workers 2`
(tests/support/backend_server.py) run as subprocesses; the tests drive Label
Studio's REST API the way its labeling UI and Data Manager do:

- the annotator's strokes are autosaved into a draft in the fast "touches" format,
  and a smart keypoint click goes to `/api/ml/{id}/interactive-annotating`, which
  Label Studio turns into a /predict call on our backend;
- a submitted annotation holds strokes as full brush RLE, and the Data Manager
  action "Retrieve Predictions" stores what /predict answers for it.

Run from the repository root: .venv/bin/python -m pytest -q tests/test_labelstudio_e2e.py -s
(-s shows the interactive round-trip median).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from ml_backend.config import labeling_config
from ml_backend.labelstudio.rle import decode_rle, encode_mask
from tests.support.backend_server import BackendServer, scribble_backend  # noqa: F401  (fixture)
from tests.support.label_studio import LabelStudioClient, LabelStudioServer
from tests.synthetic import disc_scene, iou

LABEL_CONFIG = labeling_config()
HEIGHT, WIDTH = 300, 400
ROUND_TRIPS = 10

# Strokes in image pixels (x, y): one across the object's middle, one frame near the border.
OBJECT_STROKE = [(165.0, 150.0), (200.0, 146.0), (235.0, 153.0)]
BACKGROUND_STROKE = [(12.0, 12.0), (388.0, 12.0), (388.0, 288.0), (12.0, 288.0), (12.0, 14.0)]
STROKE_WIDTH_PX = 6.0
CLICK_PX = (200.0, 150.0)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A textured reddish ellipse on a textured bluish background, saved as PNG; and its mask."""
    image, truth = disc_scene(HEIGHT, WIDTH, seed=5)
    path = tmp_path_factory.mktemp("e2e") / "ellipse.png"
    Image.fromarray(image).save(path)
    return path, truth


@dataclass(frozen=True)
class ConnectedProject:
    client: LabelStudioClient
    project_id: int
    task_id: int
    ml_backend: dict[str, Any]
    truth: np.ndarray


@pytest.fixture
def project(
    label_studio: LabelStudioServer,
    scribble_backend: BackendServer,  # noqa: F811  (fixture)
    scene: tuple[Path, np.ndarray],
    request: pytest.FixtureRequest,
) -> ConnectedProject:
    """A project per test with the shipped config, the scene as its one task and our backend connected (interactive)."""
    client = label_studio.client
    image_path, truth = scene
    # Label Studio keeps project titles to 50 characters.
    title = f"e2e {request.node.name.removeprefix('test_')}"[:50]
    created = client.create_project(title, LABEL_CONFIG)
    assert client.import_image(created["id"], image_path)["task_count"] == 1
    [task] = client.list_tasks(created["id"])
    ml_backend = client.add_ml_backend(created["id"], scribble_backend.url, title="scribble-seg", is_interactive=True)
    assert ml_backend["is_interactive"] is True and ml_backend["readable_state"] == "Connected", ml_backend
    return ConnectedProject(client, created["id"], task["id"], ml_backend, truth)


# --------------------------------------------------------------------------- regions


def stroke_region(value: dict[str, Any]) -> dict[str, Any]:
    """A brush region of the ``strokes`` control on the image's grid, holding ``value``."""
    return {
        "type": "brushlabels",
        "from_name": "strokes",
        "to_name": "image",
        "original_width": WIDTH,
        "original_height": HEIGHT,
        "image_rotation": 0,
        "value": value,
    }


def touch_stroke_region(label: str, points_px: list[tuple[float, float]], region_id: str) -> dict[str, Any]:
    """A freshly painted brush region as the labeling UI autosaves it: touches, no RLE."""
    relative_points: list[float] = []
    for x, y in points_px:
        relative_points += [100.0 * x / WIDTH, 100.0 * y / HEIGHT]
    touch = {
        "type": "add",
        # Screen pixels of the annotator's zoom level: a backend must not use them.
        "points": [round(value * 1.7) for point in points_px for value in point],
        "relativePoints": relative_points,
        "strokeWidth": STROKE_WIDTH_PX * 1.7,
        "relativeStrokeWidth": 100.0 * STROKE_WIDTH_PX / WIDTH,
        "eraserSize": 25,
    }
    value = {"format": "rle", "brushlabels": [label], "touches": [touch]}
    return {"id": region_id, "origin": "manual", **stroke_region(value)}


def rle_stroke_region(label: str, points_px: list[tuple[float, float]]) -> dict[str, Any]:
    """A brush region as a submitted annotation stores it: full RLE."""
    return stroke_region({"format": "rle", "rle": encode_mask(stroke_mask(points_px)), "brushlabels": [label]})


def stroke_mask(points_px: list[tuple[float, float]]) -> np.ndarray:
    canvas = np.zeros((HEIGHT, WIDTH), np.uint8)
    polyline = np.round(np.asarray(points_px)).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(canvas, [polyline], isClosed=False, color=1, thickness=int(STROKE_WIDTH_PX))
    return canvas.astype(bool)


def smart_keypoint(x_px: float, y_px: float) -> dict[str, Any]:
    """The context item of a smart KeyPointLabels click, as the labeling UI sends it."""
    return {
        "original_width": WIDTH,
        "original_height": HEIGHT,
        "image_rotation": 0,
        "value": {"x": 100.0 * x_px / WIDTH, "y": 100.0 * y_px / HEIGHT, "width": 0.2, "keypointlabels": ["Object"]},
        "is_positive": True,
        "id": "clickE2E01",
        "from_name": "click",
        "to_name": "image",
        "type": "keypointlabels",
        "origin": "manual",
    }


def decoded_mask_region(region: dict[str, Any]) -> np.ndarray:
    """Checks a returned region is a brush mask of the `mask` control on the image's grid; returns it 0/255."""
    assert region["type"] == "brushlabels"
    assert (region["from_name"], region["to_name"]) == ("mask", "image")
    assert region["value"]["brushlabels"] == ["Object"]
    assert region["value"]["format"] == "rle"
    assert (region["original_width"], region["original_height"]) == (WIDTH, HEIGHT)
    decoded = decode_rle(region["value"]["rle"], HEIGHT, WIDTH)
    assert set(np.unique(decoded).tolist()) <= {0, 255}, "masks must be 0/255: Label Studio draws 0/1 transparent"
    return decoded


# --------------------------------------------------------------------------- tests


def test_smart_click_after_autosaved_strokes_returns_the_object(project: ConnectedProject) -> None:
    client, task_id, ml_backend, truth = project.client, project.task_id, project.ml_backend, project.truth
    # The draft the labeling UI saves after the click: the strokes and the clicked keypoint.
    client.create_draft(task_id, [
        touch_stroke_region("Object", OBJECT_STROKE, "positive01"),
        touch_stroke_region("Background", BACKGROUND_STROKE, "negative01"),
        smart_keypoint(*CLICK_PX),
    ])  # fmt: skip
    context = {"result": [smart_keypoint(*CLICK_PX)]}

    suggestion = client.interactive_annotating(ml_backend["id"], task_id, context)

    assert suggestion["model_version"] == ml_backend["model_version"]
    assert 0.0 < suggestion["score"] <= 1.0
    [region] = suggestion["result"]
    mask = decoded_mask_region(region) == 255
    assert iou(mask, truth) >= 0.8
    # the Background stroke (read from the draft's touches) is outside the mask
    assert not (mask & stroke_mask(BACKGROUND_STROKE)).any()

    round_trips_s = []
    for _ in range(ROUND_TRIPS):
        started = time.perf_counter()
        again = client.interactive_annotating(ml_backend["id"], task_id, context)
        round_trips_s.append(time.perf_counter() - started)
        assert iou(decoded_mask_region(again["result"][0]) == 255, truth) >= 0.8
    median_ms = 1000.0 * statistics.median(round_trips_s)
    print(
        f"\ninteractive-annotating round trip through Label Studio: median {median_ms:.0f} ms of {ROUND_TRIPS} "
        f"(min {1000 * min(round_trips_s):.0f}, max {1000 * max(round_trips_s):.0f} ms)"
    )


def test_retrieve_predictions_stores_the_mask_of_a_submitted_annotation(project: ConnectedProject) -> None:
    client, task_id, ml_backend, truth = project.client, project.task_id, project.ml_backend, project.truth
    annotation = client.create_annotation(
        task_id, [rle_stroke_region("Object", OBJECT_STROKE), rle_stroke_region("Background", BACKGROUND_STROKE)]
    )
    assert len(annotation["result"]) == 2

    retrieved = client.retrieve_predictions(project.project_id, [task_id])

    assert retrieved["processed_items"] == 1
    [prediction] = client.list_predictions(task_id)
    assert prediction["model_version"] == ml_backend["model_version"]
    assert 0.0 < prediction["score"] <= 1.0
    # one mask for the one class that has strokes; the strokes themselves are not echoed back
    [region] = prediction["result"]
    mask = decoded_mask_region(region) == 255
    assert iou(mask, truth) >= 0.8

