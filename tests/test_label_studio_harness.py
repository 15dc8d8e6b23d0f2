"""End-to-end check of the Label Studio harness against a real Label Studio 1.23.2.

It also pins down what Label Studio really sends an interactive ML backend: a
stub backend records every request, and one interactive and one batch /predict
body are kept in tests/fixtures/ as references (regenerate them with
LS_HARNESS_WRITE_FIXTURES=1).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from label_studio_sdk.converter.brush import decode_rle, mask2rle
from PIL import Image

from ml_backend.tools.loopback_host import Exchange, LoopbackHost
from tests.support.label_studio import LabelStudioServer, label_studio  # noqa: F401  (fixture)

FIXTURES_DIR = Path(__file__).parent / "fixtures"
INTERACTIVE_PREDICT_FIXTURE = FIXTURES_DIR / "ls_interactive_predict.json"
BATCH_PREDICT_FIXTURE = FIXTURES_DIR / "ls_batch_predict.json"
WRITE_FIXTURES = os.environ.get("LS_HARNESS_WRITE_FIXTURES") == "1"

LABEL_CONFIG = """<View>
  <BrushLabels name="tag" toName="image">
    <Label value="Object"/>
    <Label value="Background"/>
  </BrushLabels>
  <KeyPointLabels name="kp" toName="image" smart="true">
    <Label value="Object" smart="true"/>
  </KeyPointLabels>
  <Image name="image" value="$image"/>
</View>"""

IMAGE_WIDTH, IMAGE_HEIGHT = 64, 48
STUB_MODEL_VERSION = "stub-v1"


# --------------------------------------------------------------------------- stub backend


@dataclass
class RecordedRequest:
    method: str
    path: str
    body: Any


class StubBackend:
    """An ML backend that answers like a real one and records what it is sent, on the loopback host."""

    def __init__(self, answer_region: dict[str, Any]) -> None:
        self.answer_region = answer_region
        self.host = LoopbackHost()
        for path in ("/health", "/setup", "/predict", "/webhook"):
            self.host.routes[path] = self._answer

    @property
    def url(self) -> str:
        return self.host.origin

    def received(self, path: str) -> list[RecordedRequest]:
        with self.host.lock:
            seen = list(self.host.requests)
        return [
            RecordedRequest(request.method, path, json.loads(request.body) if request.body else None)
            for request in seen
            if request.path.partition("?")[0] == path
        ]

    def _answer(self, exchange: Exchange) -> None:
        path = exchange.route_path
        if path == "/health":
            exchange.reply_json(200, {"status": "UP", "model_class": "StubBackend"})
        elif path == "/setup":
            exchange.reply_json(200, {"model_version": STUB_MODEL_VERSION})
        elif path == "/predict":
            tasks = json.loads(exchange.seen.body)["tasks"]
            result = {"result": [self.answer_region], "score": 0.9, "model_version": STUB_MODEL_VERSION}
            exchange.reply_json(200, {"results": [result for _ in tasks]})
        else:
            exchange.reply_json(200, {})


@pytest.fixture
def stub_backend() -> Iterator[StubBackend]:
    answer_mask = np.zeros((IMAGE_HEIGHT, IMAGE_WIDTH), dtype=np.uint8)
    answer_mask[10:30, 20:44] = 255
    stub = StubBackend(brush_region(answer_mask, "Object"))
    with stub.host:
        yield stub


# --------------------------------------------------------------------------- regions


def brush_region(mask: np.ndarray, label: str) -> dict[str, Any]:
    return {
        "from_name": "tag",
        "to_name": "image",
        "type": "brushlabels",
        "original_width": IMAGE_WIDTH,
        "original_height": IMAGE_HEIGHT,
        "image_rotation": 0,
        "value": {"format": "rle", "rle": mask2rle(mask), "brushlabels": [label]},
    }


def stroke_touches(pixel_points: list[tuple[float, float]], stroke_width_px: float) -> list[dict[str, Any]]:
    """One "add" touch in the fast format the labeling UI autosaves into drafts."""
    relative_points: list[float] = []
    for x, y in pixel_points:
        relative_points += [100.0 * x / IMAGE_WIDTH, 100.0 * y / IMAGE_HEIGHT]
    screen_points = [round(value * 3) for point in pixel_points for value in point]
    return [
        {
            "type": "add",
            "points": screen_points,
            "relativePoints": relative_points,
            "strokeWidth": stroke_width_px * 3,
            "relativeStrokeWidth": 100.0 * stroke_width_px / IMAGE_WIDTH,
            "eraserSize": 25,
        }
    ]


def stroke_region(touches: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": "stroke0001",
        "type": "brushlabels",
        "from_name": "tag",
        "to_name": "image",
        "original_width": IMAGE_WIDTH,
        "original_height": IMAGE_HEIGHT,
        "image_rotation": 0,
        "origin": "manual",
        "value": {"format": "rle", "brushlabels": ["Object"], "touches": touches},
    }


def smart_keypoint(x_px: float, y_px: float, is_positive: bool) -> dict[str, Any]:
    return {
        "original_width": IMAGE_WIDTH,
        "original_height": IMAGE_HEIGHT,
        "image_rotation": 0,
        "value": {
            "x": 100.0 * x_px / IMAGE_WIDTH,
            "y": 100.0 * y_px / IMAGE_HEIGHT,
            "width": 0.206,
            "keypointlabels": ["Object"],
        },
        "is_positive": is_positive,
        "id": "keypoint01",
        "from_name": "kp",
        "to_name": "image",
        "type": "keypointlabels",
        "origin": "manual",
    }


# --------------------------------------------------------------------------- reference bodies


def sanitized(value: Any, secrets_to_hide: dict[str, str]) -> Any:
    """A copy without access tokens, with run-specific strings replaced."""
    if isinstance(value, dict):
        return {key: sanitized(item, secrets_to_hide) for key, item in value.items() if key != "access_token"}
    if isinstance(value, list):
        return [sanitized(item, secrets_to_hide) for item in value]
    if isinstance(value, str):
        for secret, stand_in in secrets_to_hide.items():
            value = value.replace(secret, stand_in)
    return value


def json_shape(value: Any) -> Any:
    """Keys and value types, recursively: what a backend's parser relies on."""
    if isinstance(value, dict):
        return {key: json_shape(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        return [json_shape(value[0])] if value else []
    if isinstance(value, bool) or value is None:
        return type(value).__name__
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def check_against_reference(body: Any, reference_path: Path, secrets_to_hide: dict[str, str]) -> None:
    clean_body = sanitized(body, secrets_to_hide)
    if WRITE_FIXTURES or not reference_path.exists():
        reference_path.parent.mkdir(parents=True, exist_ok=True)
        reference_path.write_text(json.dumps(clean_body, indent=2, sort_keys=True) + "\n")
    reference = json.loads(reference_path.read_text())
    assert json_shape(clean_body) == json_shape(reference), (
        f"Label Studio's /predict body no longer has the shape recorded in {reference_path.name}"
    )


# --------------------------------------------------------------------------- the test


def test_real_label_studio_drafts_interactive_and_batch_predictions(
    label_studio: LabelStudioServer,  # noqa: F811  (pytest fixture)
    stub_backend: StubBackend,
    tmp_path: Path,
) -> None:
    client = label_studio.client
    assert label_studio.startup_seconds is not None
    print(f"Label Studio started in {label_studio.startup_seconds:.1f} s")

    project = client.create_project("harness", LABEL_CONFIG, show_collab_predictions=True)
    assert project["show_collab_predictions"] is True

    rows, columns = np.mgrid[0:IMAGE_HEIGHT, 0:IMAGE_WIDTH]
    pixels = np.stack([rows * 5, columns * 4, (rows + columns) * 2], axis=-1).astype(np.uint8)
    image_path = tmp_path / "scene.png"
    Image.fromarray(pixels).save(image_path)
    imported = client.import_image(project["id"], image_path)
    assert imported["task_count"] == 1

    tasks = client.list_tasks(project["id"])
    assert len(tasks) == 1
    task_id = tasks[0]["id"]
    image_url = tasks[0]["data"]["image"]
    assert image_url.startswith(f"/data/upload/{project['id']}/") and image_url.endswith("scene.png")

    # The uploaded file is served back, byte for byte, to a token holder (as a backend fetches it).
    served = client.http.get(image_url)
    assert served.status_code == 200 and served.content == image_path.read_bytes()

    touches = stroke_touches([(12.0, 20.0), (20.0, 22.5), (31.0, 24.0)], stroke_width_px=4.0)
    draft = client.create_draft(task_id, [stroke_region(touches)])
    task = client.get_task(task_id)
    drafts_by_id = {saved["id"]: saved for saved in task["drafts"]}
    assert draft["id"] in drafts_by_id
    assert drafts_by_id[draft["id"]]["result"][0]["value"]["touches"] == touches

    ml_backend = client.add_ml_backend(project["id"], stub_backend.url, title="stub", is_interactive=True)
    assert ml_backend["is_interactive"] is True
    assert stub_backend.received("/health"), "Label Studio never called the backend's /health"
    setup_body = stub_backend.received("/setup")[-1].body
    assert setup_body["schema"] == LABEL_CONFIG
    assert setup_body["hostname"] == label_studio.url
    assert setup_body["access_token"] == label_studio.token

    keypoint = smart_keypoint(24.0, 18.0, is_positive=True)
    suggestion = client.interactive_annotating(ml_backend["id"], task_id, {"result": [keypoint]})
    assert suggestion["result"] == [stub_backend.answer_region]
    assert suggestion["model_version"] == STUB_MODEL_VERSION

    interactive_body = stub_backend.received("/predict")[-1].body
    assert interactive_body["params"]["context"]["result"] == [keypoint]
    assert interactive_body["label_config"] == LABEL_CONFIG
    sent_task = interactive_body["tasks"][0]
    assert sent_task["id"] == task_id and sent_task["data"]["image"] == image_url
    assert [saved["result"][0]["value"]["touches"] for saved in sent_task["drafts"]] == [touches]

    annotator_mask = np.zeros((IMAGE_HEIGHT, IMAGE_WIDTH), dtype=np.uint8)
    annotator_mask[5:15, 8:40] = 255
    annotation = client.create_annotation(task_id, [brush_region(annotator_mask, "Background")])

    predict_calls_before = len(stub_backend.received("/predict"))
    retrieved = client.retrieve_predictions(project["id"], [task_id])
    assert retrieved["processed_items"] == 1
    batch_calls = stub_backend.received("/predict")[predict_calls_before:]
    assert len(batch_calls) == 1
    batch_body = batch_calls[0].body
    assert batch_body["params"]["context"] is None
    batch_task = batch_body["tasks"][0]
    assert batch_task["id"] == task_id
    [sent_annotation] = [saved for saved in batch_task["annotations"] if saved["id"] == annotation["id"]]
    sent_rle = sent_annotation["result"][0]["value"]["rle"]
    decoded = np.asarray(decode_rle(sent_rle)).reshape(IMAGE_HEIGHT, IMAGE_WIDTH, 4)[:, :, 3]
    assert np.array_equal(decoded, annotator_mask)

    predictions = client.list_predictions(task_id)
    assert [prediction["result"] for prediction in predictions] == [[stub_backend.answer_region]]
    assert predictions[0]["model_version"] == STUB_MODEL_VERSION

    secrets_to_hide = {label_studio.token: "<token>", label_studio.url: "http://localhost:8080"}
    check_against_reference(interactive_body, INTERACTIVE_PREDICT_FIXTURE, secrets_to_hide)
    check_against_reference(batch_body, BATCH_PREDICT_FIXTURE, secrets_to_hide)
