"""Drives Label Studio 1.23.2's labeling UI in headless Chromium, as an annotator does.

Python playwright drives Debian's /usr/bin/chromium (never `playwright install`).
`LabelingPage` maps image pixels to screen points and performs the annotator's
moves: choose a label by its hotkey, paint, press `u`, pick the smart keypoint,
click or Alt+click, accept or reject the suggestion, erase, submit. Every move
is one the README's "Annotate" section tells an annotator to make.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
# Tall enough for the headers, the label rows and the whole image at its fitted size.
VIEWPORT = {"width": 1400, "height": 2000}
UI_TIMEOUT_MS = 60_000
STAGE_SETTLE_S = 15.0
# The backend waits up to DRAFT_WAIT_SECONDS (12 s) for the draft; Label Studio allows 100 s.
SUGGESTION_TIMEOUT_MS = 60_000

# Hotkeys of the shipped config's labels, in config order.
STROKE_OBJECT_KEY, STROKE_BACKGROUND_KEY, SMART_KEYPOINT_KEY = "1", "2", "3"


@contextmanager
def chromium(profile_dir: Path) -> Iterator[Any]:
    """A browser context of a fresh headless Chromium profile; fails (never skips) when either is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        pytest.fail(f"Python playwright is missing ({error}): pip install playwright (never `playwright install`)")
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile_dir), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS, viewport=VIEWPORT
        )
        context.set_default_timeout(UI_TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


def _submit_credentials(page: Any, label_studio_url: str, form_path: str, email: str, password: str) -> None:
    """Fills Label Studio's email-and-password form at ``form_path`` and waits until the page leaves it."""
    page.goto(f"{label_studio_url}{form_path}")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: form_path.rstrip("/") not in url)


def log_in(page: Any, label_studio_url: str, email: str, password: str) -> None:
    _submit_credentials(page, label_studio_url, "/user/login/", email, password)


def sign_up(page: Any, label_studio_url: str, email: str, password: str) -> None:
    """A second Label Studio user, made as a person makes one: the sign-up form."""
    _submit_credentials(page, label_studio_url, "/user/signup/", email, password)


@dataclass
class Suggestion:
    """One answer of an interactive call as the browser got it, and how long the click waited for it."""

    body: dict[str, Any]
    seconds: float

    @property
    def regions(self) -> list[dict[str, Any]]:
        return list(self.body.get("data", {}).get("result", []))


class LabelingPage:
    """The labeling UI of one task, with image pixels (x, y) mapped to screen points."""

    def __init__(self, page: Any, width: int, height: int) -> None:
        self.page = page
        self.width, self.height = width, height
        self.stage = page.locator(".konvajs-content").first
        # The image as drawn: Label Studio draws it inside the stage, a few percent
        # smaller than the stage's box, so points map through the image's own box.
        self.image = page.locator("img[alt=image]").first
        # Every draft the labeling UI saves, as Label Studio answered it (newest last).
        self.saved_drafts: list[dict[str, Any]] = []
        page.on("response", self._remember_draft)

    def _remember_draft(self, response: Any) -> None:
        is_draft_save = response.request.method in ("POST", "PATCH") and (
            "/drafts" in response.url or "/api/drafts/" in response.url
        )
        if is_draft_save and response.ok and "json" in (response.headers.get("content-type") or ""):
            self.saved_drafts.append(response.json())

    # ------------------------------------------------------------------ opening

    def open_task(self, label_studio_url: str, project_id: int, task_id: int) -> None:
        self.page.goto(f"{label_studio_url}/projects/{project_id}/data?task={task_id}")
        self.wait_until_image_shown()

    def wait_until_image_shown(self) -> None:
        self.stage.wait_for(state="visible")
        self.page.wait_for_function(
            "() => { const image = document.querySelector('img[alt=image]');"
            " return image && image.complete && image.naturalWidth > 0; }"
        )
        # The stage is sized to the fitted image after the image loads: wait until it settles.
        previous = None
        deadline = time.monotonic() + STAGE_SETTLE_S
        while time.monotonic() < deadline:
            box = self.stage.bounding_box()
            if box == previous and box["width"] > 0:
                break
            previous = box
            self.page.wait_for_timeout(300)
        box = self.image.bounding_box()
        assert abs(box["width"] / box["height"] - self.width / self.height) < 0.01, box
        assert box["y"] + box["height"] <= VIEWPORT["height"], f"the image does not fit the viewport: {box}"

    def turn_auto_annotation_on(self) -> None:
        toggle = self.page.get_by_test_id("bottombar-auto-annotation-toggle")
        if not toggle.is_checked():
            self.page.get_by_text("Auto-Annotation", exact=True).click()
        assert toggle.is_checked()

    # ------------------------------------------------------------------ geometry

    def screen_point(self, x_px: float, y_px: float) -> tuple[float, float]:
        box = self.image.bounding_box()
        return box["x"] + (x_px + 0.5) * box["width"] / self.width, box["y"] + (y_px + 0.5) * box[
            "height"
        ] / self.height

    def assert_on_canvas(self, x_px: float, y_px: float) -> None:
        """Nothing (brush-size slider, toolbar, popup) covers the image at this point."""
        on_canvas = self.page.evaluate(
            "([x, y]) => !!document.elementFromPoint(x, y)?.closest('.konvajs-content')",
            list(self.screen_point(x_px, y_px)),
        )
        assert on_canvas, f"image point {(x_px, y_px)} is covered"

    def mask_on_canvas(self, mask: np.ndarray, canvas_shape: tuple[int, ...]) -> np.ndarray:
        """An image-grid mask where it shows on the stage's screenshot (the image is drawn through its own box)."""
        import cv2

        stage, image = self.stage.bounding_box(), self.image.bounding_box()
        scale_x, scale_y = image["width"] / self.width, image["height"] / self.height
        # Screenshot pixels per CSS pixel (1 in these tests, kept general).
        ratio_x, ratio_y = canvas_shape[1] / stage["width"], canvas_shape[0] / stage["height"]
        matrix = np.array(
            [
                [scale_x * ratio_x, 0, (image["x"] - stage["x"]) * ratio_x],
                [0, scale_y * ratio_y, (image["y"] - stage["y"]) * ratio_y],
            ],
            np.float64,
        )
        size = (canvas_shape[1], canvas_shape[0])
        return cv2.warpAffine(mask.astype(np.uint8), matrix, size, flags=cv2.INTER_NEAREST) > 0

    def canvas_pixels(self) -> np.ndarray:
        png = self.stage.screenshot()
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)

    # ------------------------------------------------------------------ moves

    def label(self, hotkey: str) -> Any:
        return self.page.locator(".lsf-label").filter(
            has=self.page.locator(".lsf-label__hotkey", has_text=re.compile(f"^{hotkey}$"))
        )

    def release_focus(self) -> None:
        # Hotkeys are ignored while a form control (the toggle, a label chip) has focus.
        self.page.evaluate("() => document.activeElement && document.activeElement.blur()")

    def choose_stroke_label(self, hotkey: str) -> None:
        """`u` first: a fresh brush region stays selected and the new label would relabel it."""
        self.release_focus()
        self.page.keyboard.press("u")
        self.label(hotkey).click()

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

    def select_region(self, kind: str, index: int) -> None:
        """Selects a region in the outliner (the eraser erases from the selected brush region)."""
        self.page.locator(f".lsf-tree__node_type_{kind}").nth(index).click()

    def choose_eraser(self) -> None:
        self.release_focus()
        self.page.locator("button[aria-label=eraser]").first.click()

    def choose_brush(self) -> None:
        self.release_focus()
        self.page.locator("button[aria-label=brush-tool]").first.click()

    def choose_smart_keypoint(self) -> None:
        """The smart keypoint tool (in the toolbar's smart group) and its label; re-chosen before every click."""
        self.release_focus()
        self.page.keyboard.press("u")
        self.page.locator(".lsf-toolbar__group > .lsf-tool_smart").first.hover()
        self.page.locator(".lsf-toolbar__smart button[aria-label=key-point-tool]").first.click()
        self.label(SMART_KEYPOINT_KEY).click()
        self.page.mouse.move(5, 5)

    def click_for_mask(self, x_px: float, y_px: float, negative: bool = False) -> Suggestion:
        """A smart keypoint click (Alt: not the object); returns the answer and the click-to-answer seconds."""
        self.assert_on_canvas(x_px, y_px)
        with self.page.expect_response(
            lambda response: "/interactive-annotating" in response.url, timeout=SUGGESTION_TIMEOUT_MS
        ) as answer_info:
            if negative:
                self.page.keyboard.down("Alt")
            started = time.monotonic()
            self.page.mouse.click(*self.screen_point(x_px, y_px))
            if negative:
                self.page.keyboard.up("Alt")
        answer = answer_info.value
        seconds = time.monotonic() - started
        assert answer.ok, answer.text()
        return Suggestion(answer.json(), seconds)

    def wait_for_suggestion_shown(self, count: int = 1) -> None:
        self.page.wait_for_function(
            "(count) => new RegExp('^' + count + ' suggestion').test("
            "document.querySelector('.lsf-auto-accept__info')?.textContent || '')",
            arg=count,
        )

    def accept(self) -> None:
        self.page.get_by_test_id("bottombar-accept-suggestions-button").click()

    def reject(self) -> None:
        self.page.get_by_test_id("bottombar-reject-suggestions-button").click()

    def region_count(self, kind: str) -> int:
        return int(
            self.page.evaluate(
                "(selector) => document.querySelectorAll(selector).length", f".lsf-tree__node_type_{kind}"
            )
        )

    def wait_for_region_count(self, kind: str, count: int) -> None:
        self.page.wait_for_function(
            "([selector, count]) => document.querySelectorAll(selector).length === count",
            arg=[f".lsf-tree__node_type_{kind}", count],
        )

    def submit(self, task_id: int) -> dict[str, Any]:
        with self.page.expect_response(
            lambda response: response.request.method == "POST" and f"/api/tasks/{task_id}/annotations" in response.url
        ) as submitted_info:
            self.page.get_by_role("button", name="Submit").click()
        submitted = submitted_info.value
        assert submitted.ok, submitted.text()
        return submitted.json()
