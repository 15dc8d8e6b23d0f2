"""An annotator's session in Label Studio's real labeling UI, in headless Chromium.

Label Studio 1.23.2 (tests/support/label_studio.py) and our backend as a real
server (tests/support/backend_server.py) run as subprocesses; Python playwright
drives Debian's /usr/bin/chromium. The annotator logs in, opens the task, turns
"Auto-Annotation" on, paints a positive stroke with the Object brush and a
negative one with Background, waits for the draft autosave, clicks the object
with the smart keypoint tool and gets our mask as a suggestion, accepts it and
submits. Checked on the way: the autosaved strokes lie where they were painted,
the suggestion Label Studio got back is the object, the UI shows it as a
suggestion, the canvas turns the mask's colour over the object and nowhere else,
and the submitted annotation holds the mask.

Run (needs `pip install playwright` in the venv, NEVER `playwright install`, and
Debian's chromium package):

    cd /work/main && /tmp/venv/bin/pytest -q tests/test_labelstudio_browser.py -s

The screenshot of the suggestion goes to $LS_BROWSER_SCREENSHOT (default:
<pytest tmp_path>/suggestion.png); its path is printed.
"""

from __future__ import annotations

import io
import os
import re
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
from tests.synthetic import disc_scene, iou

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
VIEWPORT = {"width": 1400, "height": 1100}  # tall enough for the whole image at its fitted size
LABEL_CONFIG = labeling_config()
HEIGHT, WIDTH = 300, 400
UI_TIMEOUT_MS = 60_000
# The labeling UI autosaves drafts at most every 5 s.
AUTOSAVE_TIMEOUT_S = 30.0
CANVAS_TIMEOUT_S = 15.0

# Hotkeys of the shipped config's labels, in config order: strokes Object, strokes
# Background, smart keypoint Object, smart rectangle Object, mask Object.
STROKE_OBJECT_KEY, STROKE_BACKGROUND_KEY, SMART_KEYPOINT_KEY = "1", "2", "3"

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


# --------------------------------------------------------------------------- browser


@pytest.fixture
def chromium_page(tmp_path: Path) -> Iterator[Any]:
    """A page of a fresh headless Chromium profile; fails (never skips) when playwright or chromium is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        pytest.fail(f"Python playwright is missing ({error}): pip install playwright (never `playwright install`)")
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport=VIEWPORT,
        )
        context.set_default_timeout(UI_TIMEOUT_MS)
        try:
            yield context.new_page()
        finally:
            context.close()


class LabelingPage:
    """The labeling UI of one task, with image pixels mapped to screen points."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.stage = page.locator(".konvajs-content").first

    def wait_until_image_shown(self) -> None:
        self.stage.wait_for(state="visible")
        self.page.wait_for_function(
            "() => { const image = document.querySelector('img[alt=image]');"
            " return image && image.complete && image.naturalWidth > 0; }"
        )
        # The stage is sized to the fitted image after the image loads: wait until it settles.
        previous = None
        deadline = time.monotonic() + CANVAS_TIMEOUT_S
        while time.monotonic() < deadline:
            box = self.stage.bounding_box()
            if box == previous and box["width"] > 0:
                break
            previous = box
            self.page.wait_for_timeout(300)
        box = self.stage.bounding_box()
        # The shipped config fits the image into the stage: same aspect, no letterbox to map around.
        assert abs(box["width"] / box["height"] - WIDTH / HEIGHT) < 0.01, box

    def screen_point(self, x_px: float, y_px: float) -> tuple[float, float]:
        box = self.stage.bounding_box()
        return box["x"] + (x_px + 0.5) * box["width"] / WIDTH, box["y"] + (y_px + 0.5) * box["height"] / HEIGHT

    def label(self, hotkey: str) -> Any:
        return self.page.locator(".lsf-label").filter(
            has=self.page.locator(".lsf-label__hotkey", has_text=re.compile(f"^{hotkey}$"))
        )

    def release_focus(self) -> None:
        # Hotkeys are ignored while a form control (the toggle, a label chip) has focus.
        self.page.evaluate("() => document.activeElement && document.activeElement.blur()")

    def assert_on_canvas(self, x_px: float, y_px: float) -> None:
        """Nothing (brush-size slider, toolbar, popup) covers the image at this point."""
        on_canvas = self.page.evaluate(
            "([x, y]) => !!document.elementFromPoint(x, y)?.closest('.konvajs-content')",
            list(self.screen_point(x_px, y_px)),
        )
        assert on_canvas, f"image point {(x_px, y_px)} is covered by {self.element_at(x_px, y_px)}"

    def element_at(self, x_px: float, y_px: float) -> str:
        return self.page.evaluate(
            "([x, y]) => document.elementFromPoint(x, y)?.outerHTML.slice(0, 200) ?? 'nothing'",
            list(self.screen_point(x_px, y_px)),
        )

    def paint(self, points_px: list[tuple[float, float]]) -> None:
        for point in points_px:
            self.assert_on_canvas(*point)
        mouse = self.page.mouse
        mouse.move(*self.screen_point(*points_px[0]))
        mouse.down()
        for point in points_px[1:]:
            mouse.move(*self.screen_point(*point), steps=12)
            # Chromium coalesces mouse moves per frame: let a frame pass at each vertex.
            self.page.wait_for_timeout(60)
        mouse.up()

    def wait_for_region_count(self, kind: str, count: int) -> None:
        self.page.wait_for_function(
            "([selector, count]) => document.querySelectorAll(selector).length === count",
            arg=[f".lsf-tree__node_type_{kind}", count],
        )

    def canvas_pixels(self) -> np.ndarray:
        png = self.stage.screenshot()
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)


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
    saved_drafts: list[dict[str, Any]] = []

    def remember_draft(response: Any) -> None:
        is_draft_save = response.request.method in ("POST", "PATCH") and (
            f"/api/tasks/{task_id}/drafts" in response.url or "/api/drafts/" in response.url
        )
        if is_draft_save and response.ok:
            saved_drafts.append(response.json())

    page.on("response", remember_draft)

    # Log in as the harness's user and open the task.
    page.goto(f"{label_studio.url}/user/login/")
    page.fill("input[name=email]", label_studio.username)
    page.fill("input[name=password]", label_studio.password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/user/login" not in url)
    page.goto(f"{label_studio.url}/projects/{project['id']}/data?task={task_id}")
    ui = LabelingPage(page)
    ui.wait_until_image_shown()

    toggle = page.get_by_test_id("bottombar-auto-annotation-toggle")
    page.get_by_text("Auto-Annotation", exact=True).click()
    assert toggle.is_checked()

    # A positive stroke with the Object brush...
    ui.release_focus()
    ui.label(STROKE_OBJECT_KEY).click()
    ui.paint(OBJECT_STROKE)
    ui.wait_for_region_count("brushregion", 1)
    # ...then `u`, or the fresh region stays selected and the next label would relabel it.
    ui.release_focus()
    page.keyboard.press("u")
    ui.label(STROKE_BACKGROUND_KEY).click()
    for stroke in BACKGROUND_STROKES:
        ui.paint(stroke)
    ui.wait_for_region_count("brushregion", 2)
    ui.release_focus()
    page.keyboard.press("u")

    # The autosaved draft holds every stroke, where it was painted (in the fast touches format).
    def holds_every_stroke(draft: dict[str, Any]) -> bool:
        strokes = stroke_labels(draft["result"])
        return set(strokes) == {"Object", "Background"} and len(strokes["Background"]["value"]["touches"]) == len(
            BACKGROUND_STROKES
        )

    deadline = time.monotonic() + AUTOSAVE_TIMEOUT_S
    while time.monotonic() < deadline and not (saved_drafts and holds_every_stroke(saved_drafts[-1])):
        page.wait_for_timeout(250)
    assert saved_drafts, f"no draft was autosaved within {AUTOSAVE_TIMEOUT_S:.0f} s"
    assert holds_every_stroke(saved_drafts[-1]), saved_drafts[-1]["result"]
    strokes = stroke_labels(saved_drafts[-1]["result"])
    assert stroke_pixels_inside(strokes["Object"], truth) == 1.0
    assert stroke_pixels_inside(strokes["Background"], ~truth) == 1.0

    # The smart keypoint tool (in the toolbar's smart group), its label, a click on the object.
    page.locator(".lsf-toolbar__group > .lsf-tool_smart").first.hover()
    page.locator(".lsf-toolbar__smart button[aria-label=key-point-tool]").first.click()
    ui.label(SMART_KEYPOINT_KEY).click()
    page.mouse.move(5, 5)
    page.wait_for_timeout(300)
    ui.assert_on_canvas(*CLICK_PX)
    canvas_before = ui.canvas_pixels()
    with page.expect_response(lambda response: "/interactive-annotating" in response.url) as answer_info:
        page.mouse.click(*ui.screen_point(*CLICK_PX))
    answer = answer_info.value
    assert answer.ok, answer.text()
    body = answer.json()
    assert "errors" not in body, body
    [suggested_region] = body["data"]["result"]
    assert iou(decoded_mask(suggested_region), truth) >= 0.8

    # The UI offers it as a suggestion to accept or reject...
    page.wait_for_function(
        "() => /^1 suggestion/.test(document.querySelector('.lsf-auto-accept__info')?.textContent || '')"
    )
    accept = page.get_by_test_id("bottombar-accept-suggestions-button")
    assert accept.is_visible() and page.get_by_test_id("bottombar-reject-suggestions-button").is_visible()
    # ...and draws it: the canvas changes colour over the object and nowhere else.
    page.mouse.move(5, 5)
    canvas_truth = cv2.resize(truth.astype(np.uint8), canvas_before.shape[1::-1], interpolation=cv2.INTER_NEAREST) > 0
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
