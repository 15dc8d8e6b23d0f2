"""An annotator's session in Label Studio's real labeling UI, in headless Chromium.

Label Studio 1.23.2 (tests/support/label_studio.py) and our backend as a real
server (tests/support/backend_server.py) run as subprocesses; Python playwright
drives Debian's /usr/bin/chromium. The annotator logs in, opens the task, turns
"Auto-Annotation" on, paints a positive stroke with the Object brush and a
negative one with Background, clicks the object with the smart keypoint tool at
once (the backend waits for the draft Label Studio saves after the click) and
gets our mask as a suggestion, accepts it and submits. Checked on the way: the
autosaved strokes lie where they were painted,
the suggestion Label Studio got back is the object, the UI shows it as a
suggestion, the canvas turns the mask's colour over the object and nowhere else,
and the submitted annotation holds the mask.

Run (needs `pip install playwright` in the venv, NEVER `playwright install`, and
Debian's chromium package):

    .venv/bin/python -m pytest -q tests/test_labelstudio_browser.py -s   # from the repository root, after `make test`'s install

The screenshot of the suggestion goes to $LS_BROWSER_SCREENSHOT (default:
<pytest tmp_path>/suggestion.png); its path is printed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from ml_backend.config import labeling_config
from ml_backend.labelstudio.rle import decode_rle
from tests.support.backend_server import BackendServer, scribble_backend  # noqa: F401  (fixture)
from tests.support.label_studio import LabelStudioServer
from tests.support.labeling_ui import STROKE_BACKGROUND_KEY, STROKE_OBJECT_KEY, LabelingPage, chromium, log_in
from tests.synthetic import disc_scene, iou

LABEL_CONFIG = labeling_config()
HEIGHT, WIDTH = 300, 400
CANVAS_TIMEOUT_S = 15.0

# Image pixels (x, y): a stroke across the ellipse's middle, and a frame near the border
# painted as four straight strokes into one region. The frame keeps off the image's
# top-right corner, which the brush-size slider covers: moves over the slider never
# reach the brush, which then cuts the corner with a chord (or loses the stroke).
OBJECT_STROKE = [(165.0, 150.0), (185.0, 147.0), (205.0, 148.0), (235.0, 153.0)]
FRAME_LEFT, FRAME_TOP, FRAME_RIGHT, FRAME_BOTTOM = 16.0, 16.0, 365.0, 284.0
BACKGROUND_STROKES = [
    [(FRAME_LEFT, FRAME_TOP), (FRAME_RIGHT, FRAME_TOP)],
    [(FRAME_RIGHT, FRAME_TOP), (FRAME_RIGHT, FRAME_BOTTOM)],
    [(FRAME_RIGHT, FRAME_BOTTOM), (FRAME_LEFT, FRAME_BOTTOM)],
    [(FRAME_LEFT, FRAME_BOTTOM), (FRAME_LEFT, FRAME_TOP)],
]
CLICK_PX = (200.0, 190.0)  # on the object, off the stroke: a click on a region selects it instead


@pytest.fixture
def chromium_page(tmp_path: Path) -> Iterator[Any]:
    with chromium(tmp_path / "chromium-profile") as context:
        yield context.new_page()


# --------------------------------------------------------------------------- checks


def stroke_pixels_inside(region: dict[str, Any], mask: np.ndarray) -> float:
    """Share of a brush region's touch points (percent coordinates) that fall on `mask`."""
    points = np.asarray(
        [value for touch in region["value"]["touches"] for value in touch["relativePoints"]], dtype=float
    ).reshape(-1, 2)
    columns = np.clip((points[:, 0] * WIDTH / 100.0).astype(int), 0, WIDTH - 1)
    rows = np.clip((points[:, 1] * HEIGHT / 100.0).astype(int), 0, HEIGHT - 1)
    return float(mask[rows, columns].mean())


def stroke_labels(result: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        region["value"]["brushlabels"][0]: region
        for region in result
        if region.get("from_name") == "strokes" and region.get("type") == "brushlabels"
    }


def decoded_mask(region: dict[str, Any]) -> np.ndarray:
    assert (region["from_name"], region["type"], region["value"]["brushlabels"]) == ("mask", "brushlabels", ["Object"])
    assert (region["original_width"], region["original_height"]) == (WIDTH, HEIGHT)
    return decode_rle(region["value"]["rle"], HEIGHT, WIDTH) > 127


def changed_area(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Canvas pixels whose colour changed clearly, without isolated specks."""
    changed = (np.abs(after - before).sum(axis=-1) > 60).astype(np.uint8)
    return cv2.morphologyEx(changed, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0


# --------------------------------------------------------------------------- the test


def test_annotator_gets_the_object_as_a_suggestion_and_submits_it(
    label_studio: LabelStudioServer,
    scribble_backend: BackendServer,  # noqa: F811  (fixture)
    chromium_page: Any,
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    client = label_studio.client
    image, truth = disc_scene(HEIGHT, WIDTH, seed=8)
    image_path = tmp_path / "ellipse.png"
    Image.fromarray(image).save(image_path)
    project = client.create_project("browser", LABEL_CONFIG)
    client.import_image(project["id"], image_path)
    [task] = client.list_tasks(project["id"])
    task_id = task["id"]
    ml_backend = client.add_ml_backend(project["id"], scribble_backend.url, title="scribble-seg", is_interactive=True)
    assert ml_backend["readable_state"] == "Connected", ml_backend
    screenshot_path = Path(os.environ.get("LS_BROWSER_SCREENSHOT") or tmp_path / "suggestion.png")

    page = chromium_page
    log_in(page, label_studio.url, label_studio.username, label_studio.password)
    ui = LabelingPage(page, WIDTH, HEIGHT)
    ui.open_task(label_studio.url, project["id"], task_id)
    ui.turn_auto_annotation_on()

    # A positive stroke with the Object brush...
    ui.choose_stroke_label(STROKE_OBJECT_KEY)
    ui.paint(OBJECT_STROKE)
    ui.wait_for_region_count("brushregion", 1)
    # ...then (after `u`: a fresh region stays selected) the Background frame.
    ui.choose_stroke_label(STROKE_BACKGROUND_KEY)
    for stroke in BACKGROUND_STROKES:
        ui.paint(stroke)
    ui.wait_for_region_count("brushregion", 2)

    # The smart keypoint, a click on the object at once: no waiting for the autosave.
    ui.choose_smart_keypoint()
    page.wait_for_timeout(300)
    canvas_before = ui.canvas_pixels()
    suggestion = ui.click_for_mask(*CLICK_PX)
    body = suggestion.body
    assert "errors" not in body, body
    [suggested_region] = body["data"]["result"]
    assert iou(decoded_mask(suggested_region), truth) >= 0.8

    # The draft the backend waited for holds every stroke, where it was painted (fast touches format).
    strokes = stroke_labels(ui.saved_drafts[-1]["result"])
    assert set(strokes) == {"Object", "Background"}
    assert len(strokes["Background"]["value"]["touches"]) == len(BACKGROUND_STROKES)
    assert stroke_pixels_inside(strokes["Object"], truth) == 1.0
    assert stroke_pixels_inside(strokes["Background"], ~truth) == 1.0

    # The UI offers it as a suggestion to accept or reject...
    page.wait_for_function(
        "() => /^1 suggestion/.test(document.querySelector('.lsf-auto-accept__info')?.textContent || '')"
    )
    accept = page.get_by_test_id("bottombar-accept-suggestions-button")
    assert accept.is_visible() and page.get_by_test_id("bottombar-reject-suggestions-button").is_visible()
    # ...and draws it: the canvas changes colour over the object and nowhere else.
    page.mouse.move(5, 5)
    canvas_truth = ui.mask_on_canvas(truth, canvas_before.shape)
    shown_iou = 0.0
    deadline = time.monotonic() + CANVAS_TIMEOUT_S
    while time.monotonic() < deadline and shown_iou < 0.75:
        page.wait_for_timeout(250)
        shown_iou = iou(changed_area(canvas_before, ui.canvas_pixels()), canvas_truth)
    page.screenshot(path=str(screenshot_path))
    print(f"\nsuggestion screenshot: {screenshot_path} (canvas change vs object: IoU {shown_iou:.2f})")
    assert shown_iou >= 0.75, f"the canvas change matches the object only at IoU {shown_iou:.2f}"

    # Accepting turns the suggestion into a brush region of the `mask` control; submitting stores it.
    accept.click()
    ui.wait_for_region_count("brushregion", 3)
    with page.expect_response(
        lambda response: response.request.method == "POST" and f"/api/tasks/{task_id}/annotations" in response.url
    ) as submitted_info:
        page.get_by_role("button", name="Submit").click()
    submitted = submitted_info.value
    assert submitted.ok, submitted.text()
    [annotation] = [saved for saved in client.get_task(task_id)["annotations"] if saved["id"] == submitted.json()["id"]]
    [mask_region] = [region for region in annotation["result"] if region["from_name"] == "mask"]
    assert iou(decoded_mask(mask_region), truth) >= 0.8
    assert set(stroke_labels(annotation["result"])) == {"Object", "Background"}
    print(f"browser session: {time.monotonic() - started:.1f} s; annotation {annotation['id']} holds the mask")
