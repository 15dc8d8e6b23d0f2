"""Annotators' sessions in Label Studio's real labeling UI, each click made right after its stroke.

Two Label Studio users: the backend is connected with user A's token (the
harness admin, as an administrator connects a backend), the browser is logged
in as user B, an annotator who signed up. Label Studio saves B's draft 5 s
after B's last change, so the strokes of a click made at once reach the backend
only through the draft it reads with A's token (ml_backend/server/labelstudio_drafts.py).

What the annotator sees is checked on the canvas (the suggestion changes the
colour over the object) and what Label Studio stores through its REST API.

With LS_SCREENSHOT_DIR set, the sessions save the README's pictures there
(small PNGs): `LS_SCREENSHOT_DIR=docs/images pytest tests/test_labelstudio_sessions.py`.
With LS_DEBUG_DIR set, a failing session leaves its drafts, masks and canvas shots there.
"""

from __future__ import annotations

import itertools
import os
import secrets
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from ml_backend.config import labeling_config
from ml_backend.labelstudio.rle import decode_rle
from tests.support.data import shared_dataset
from tests.support.backend_server import BackendServer, scribble_backend  # noqa: F401  (fixture)
from tests.support.label_studio import LabelStudioServer
from tests.support.labeling_ui import (
    STROKE_BACKGROUND_KEY,
    STROKE_OBJECT_KEY,
    LabelingPage,
    Suggestion,
    chromium,
    sign_up,
)
from tests.synthetic import iou

LABEL_CONFIG = labeling_config()
PHOTOGRAPH = "cross.png"  # GrabCut: a stone cross; a stroke on it alone leaks into the background
CANVAS_TIMEOUT_MS = 15_000
SCREENSHOT_WIDTH = 560


# --------------------------------------------------------------------------- session


@dataclass
class AnnotatorSession:
    label_studio: LabelStudioServer
    backend: BackendServer
    browser: Any
    annotator_email: str
    timings: dict[str, list[float]]

    def new_task(self, title: str, image_path: Path) -> tuple[int, int]:
        """A project with the shipped config and the backend (user A's token); its one task."""
        client = self.label_studio.client
        project = client.create_project(title, LABEL_CONFIG)
        client.import_image(project["id"], image_path)
        [task] = client.list_tasks(project["id"])
        ml_backend = client.add_ml_backend(project["id"], self.backend.url, title="scribble-seg", is_interactive=True)
        assert ml_backend["readable_state"] == "Connected", ml_backend
        return project["id"], task["id"]

    def open(self, project_id: int, task_id: int, width: int, height: int) -> LabelingPage:
        page = self.browser.new_page()
        ui = LabelingPage(page, width, height)
        ui.open_task(self.label_studio.url, project_id, task_id)
        ui.turn_auto_annotation_on()
        return ui


@pytest.fixture(scope="module")
def session(
    label_studio: LabelStudioServer,
    scribble_backend: BackendServer,  # noqa: F811  (fixture)
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AnnotatorSession]:
    email, password = f"annotator-{secrets.token_hex(3)}@example.com", secrets.token_hex(12)
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as browser:
        page = browser.new_page()
        sign_up(page, label_studio.url, email, password)
        page.close()
        timings: dict[str, list[float]] = {}
        yield AnnotatorSession(label_studio, scribble_backend, browser, email, timings)
        for name, seconds in timings.items():
            print(
                f"\nclick-to-mask, {name}: median {statistics.median(seconds):.1f} s of {len(seconds)} ({', '.join(f'{s:.1f}' for s in seconds)})"
            )


def screenshot(ui: LabelingPage | Any, name: str, clip: dict[str, float] | None = None) -> None:
    """A small PNG for the README: the labeling area (headers, label rows, image) unless ``clip`` says otherwise."""
    folder = os.environ.get("LS_SCREENSHOT_DIR")
    if not folder:
        return
    page = ui.page if isinstance(ui, LabelingPage) else ui
    if clip is None and isinstance(ui, LabelingPage):
        # Between the data manager's column and the side panel, down to the image's end.
        stage = ui.stage.bounding_box()
        left = page.locator(".lsf-main-view, .lsf-main-content").first.bounding_box() or {"x": stage["x"] - 20}
        clip = {
            "x": left["x"],
            "y": 40,
            "width": stage["x"] + stage["width"] + 60 - left["x"],
            "height": stage["y"] + stage["height"] + 50 - 40,
        }
    path = Path(folder) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), clip=clip)
    picture = Image.open(path).convert("RGB")
    if picture.width > SCREENSHOT_WIDTH:
        picture = picture.resize(
            (SCREENSHOT_WIDTH, round(picture.height * SCREENSHOT_WIDTH / picture.width)), Image.LANCZOS
        )
    picture.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(path, optimize=True)


# --------------------------------------------------------------------------- checks


def suggested_mask(suggestion: Suggestion, width: int, height: int) -> np.ndarray:
    regions = [region for region in suggestion.regions if region.get("from_name") == "mask"]
    assert len(regions) == 1, suggestion.body
    [region] = regions
    assert region["type"] == "brushlabels" and region["value"]["brushlabels"] == ["Object"]
    assert (region["original_width"], region["original_height"]) == (width, height)
    return decode_rle(region["value"]["rle"], height, width) > 127


def changed_area(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Canvas pixels whose colour changed clearly, without isolated specks."""
    changed = (np.abs(after - before).sum(axis=-1) > 60).astype(np.uint8)
    return cv2.morphologyEx(changed, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0


def shown_iou(ui: LabelingPage, before: np.ndarray, mask: np.ndarray, wanted: float) -> float:
    """IoU of the canvas change with the mask, polled until it reaches ``wanted`` or time runs out."""
    ui.page.mouse.move(5, 5)
    canvas_mask = ui.mask_on_canvas(mask, before.shape)
    best = 0.0
    for _ in range(CANVAS_TIMEOUT_MS // 250):
        after = ui.canvas_pixels()
        best = max(best, iou(changed_area(before, after), canvas_mask))
        if best >= wanted:
            break
        ui.page.wait_for_timeout(250)
    if os.environ.get("LS_DEBUG_DIR") and best < wanted:
        folder = Path(os.environ["LS_DEBUG_DIR"])
        Image.fromarray(before.astype(np.uint8)).save(folder / "canvas-before.png")
        Image.fromarray(after.astype(np.uint8)).save(folder / "canvas-after.png")
        Image.fromarray((canvas_mask * 255).astype(np.uint8)).save(folder / "canvas-mask.png")
    return best


def stored_masks(
    label_studio: LabelStudioServer, task_id: int, annotation_id: int, width: int, height: int
) -> list[np.ndarray]:
    [annotation] = [
        saved for saved in label_studio.client.get_task(task_id)["annotations"] if saved["id"] == annotation_id
    ]
    return [
        decode_rle(region["value"]["rle"], height, width) > 127
        for region in annotation["result"]
        if region.get("from_name") == "mask"
    ]


def line(points: list[tuple[float, float]], shape: tuple[int, int], width: int = 9) -> np.ndarray:
    canvas = np.zeros(shape, np.uint8)
    for start, end in itertools.pairwise(points):
        cv2.line(canvas, tuple(map(int, start)), tuple(map(int, end)), 1, width)
    return canvas > 0


def debug(session: AnnotatorSession, ui: LabelingPage) -> str:
    """What went on: the drafts the UI saved (regions only) and the backend's log."""
    if os.environ.get("LS_DEBUG_DIR"):
        import json

        (Path(os.environ["LS_DEBUG_DIR"]) / f"drafts-{ui.page.url.split('task=')[-1]}.json").write_text(
            json.dumps(ui.saved_drafts)
        )
    drafts = [
        [(region.get("type"), region.get("from_name"), region.get("id"), [t.get("type") for t in region.get("value", {}).get("touches", [])])
         for region in draft.get("result", [])]
        for draft in ui.saved_drafts
    ]  # fmt: skip
    return f"\ndrafts saved: {drafts}\nbackend log:\n{session.backend.log_tail(3000)}"


# --------------------------------------------------------------------------- scenes


def two_disc_scene(touching: bool, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two discs of one class on a textured background: (image, disc A, disc B), 400x300.

    Touching discs differ in colour (as two touching objects do); the annotator
    tells them apart with an Alt+click on the neighbour.
    """
    height, width = 300, 400
    rng = np.random.default_rng(seed)
    disc_a = np.zeros((height, width), np.uint8)
    disc_b = np.zeros((height, width), np.uint8)
    if touching:
        cv2.circle(disc_a, (140, 150), 70, 1, -1)
        cv2.circle(disc_b, (275, 150), 65, 1, -1)
    else:
        cv2.circle(disc_a, (110, 150), 55, 1, -1)
        cv2.circle(disc_b, (290, 150), 55, 1, -1)
    disc_a = disc_a > 0
    disc_b = (disc_b > 0) & ~disc_a
    image = np.empty((height, width, 3), np.float32)
    image[:] = (60, 90, 170)
    image[disc_a] = (200, 80, 60)
    image[disc_b] = (230, 200, 70) if touching else (200, 80, 60)
    image += rng.normal(0, 14, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), disc_a, disc_b


def save_image(pixels: np.ndarray, path: Path) -> Path:
    Image.fromarray(pixels).save(path)
    return path


# Image pixels (x, y) of a Background frame near the border, painted as three strokes:
# it keeps off the image's top-right corner, which the brush-size slider covers.
def background_frame(width: int, height: int, margin: int = 14) -> list[list[tuple[float, float]]]:
    left, top, right, bottom = margin, margin, width - margin, height - margin
    return [
        [(left, top + 40), (left, bottom)],
        [(left, bottom), (right, bottom)],
        [(right, bottom), (right, top + 130)],
    ]


# One Object stroke across both apart discs, from disc A's left part to disc B's right part.
STROKE_OVER_BOTH = [(90.0, 150.0), (310.0, 150.0)]


@dataclass
class DiscTask:
    """A new task showing two discs, open in the labeling UI."""

    image: np.ndarray
    disc_a: np.ndarray
    disc_b: np.ndarray
    project_id: int
    task_id: int
    ui: LabelingPage

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the image."""
        return self.disc_a.shape


def open_disc_task(session: AnnotatorSession, tmp_path: Path, title: str, touching: bool = False) -> DiscTask:
    image, disc_a, disc_b = two_disc_scene(touching=touching)
    height, width = disc_a.shape
    project_id, task_id = session.new_task(title, save_image(image, tmp_path / "discs.png"))
    return DiscTask(image, disc_a, disc_b, project_id, task_id, session.open(project_id, task_id, width, height))


def stroke_over_both_discs(session: AnnotatorSession, tmp_path: Path, title: str) -> DiscTask:
    """Opens a new task of two apart discs, paints one stroke over both and clicks on A: the mask covers both."""
    task = open_disc_task(session, tmp_path, title)
    height, width = task.size
    task.ui.choose_stroke_label(STROKE_OBJECT_KEY)
    task.ui.paint(STROKE_OVER_BOTH)
    task.ui.choose_smart_keypoint()
    both = suggested_mask(task.ui.click_for_mask(110, 175), width, height)
    assert iou(both, task.disc_a | task.disc_b) >= 0.8, debug(session, task.ui)
    return task


# --------------------------------------------------------------------------- tests


def test_the_backend_is_connected_in_the_model_settings(session: AnnotatorSession, tmp_path: Path) -> None:
    """What the README's "Connect to Label Studio" shows: the backend in the project's Model settings."""
    image, _, _ = two_disc_scene(touching=False)
    project_id, _ = session.new_task("connect", save_image(image, tmp_path / "discs.png"))
    page = session.browser.new_page()
    page.goto(f"{session.label_studio.url}/projects/{project_id}/settings/ml")
    page.get_by_text("scribble-seg").first.wait_for()
    assert page.get_by_text("Connected").first.is_visible()
    screenshot(page, "model-settings", clip={"x": 0, "y": 0, "width": 1400, "height": 700})
    ml_backends = session.label_studio.client.request("GET", f"/api/ml?project={project_id}")
    assert [(entry["url"], entry["is_interactive"]) for entry in ml_backends] == [(session.backend.url, True)]
    page.close()


def test_two_discs_clicks_at_once_each_stroke_counts(session: AnnotatorSession, tmp_path: Path) -> None:
    """The issue's session: a stroke on disc A, Alt+click on the background at once; the same for disc B."""
    task = open_disc_task(session, tmp_path, "two discs")
    ui, disc_a, disc_b = task.ui, task.disc_a, task.disc_b
    height, width = task.size

    ui.choose_stroke_label(STROKE_OBJECT_KEY)
    ui.paint([(85, 150), (110, 148), (135, 152)])
    ui.choose_smart_keypoint()
    first = ui.click_for_mask(200, 40, negative=True)
    session.timings.setdefault("click at once", []).append(first.seconds)
    assert iou(suggested_mask(first, width, height), disc_a) >= 0.9

    ui.choose_stroke_label(STROKE_OBJECT_KEY)
    ui.paint([(265, 150), (290, 148), (315, 152)])
    ui.choose_smart_keypoint()
    second = ui.click_for_mask(200, 260, negative=True)
    session.timings.setdefault("click at once", []).append(second.seconds)
    assert iou(suggested_mask(second, width, height), disc_a | disc_b) >= 0.8
    ui.page.close()


def test_photograph_stroke_leak_negative_stroke_accept_submit(session: AnnotatorSession, tmp_path: Path) -> None:
    """A real photograph: a stroke alone leaks off the object; a Background stroke there removes the leak."""
    grabcut = shared_dataset("GrabCut")
    image_path = grabcut / "images" / PHOTOGRAPH
    truth = np.asarray(Image.open(grabcut / "masks" / PHOTOGRAPH)) > 127
    height, width = truth.shape
    project_id, task_id = session.new_task("photograph", image_path)
    ui = session.open(project_id, task_id, width, height)
    screenshot(ui, "labeling-ui")

    # Round 1: a positive stroke across the object, the click at once.
    inner = cv2.erode(truth.astype(np.uint8), np.ones((25, 25), np.uint8)) > 0
    row = int(np.median(np.nonzero(inner)[0]))
    columns = np.nonzero(inner[row])[0]
    stroke = [(float(columns.min()), float(row)), (float(columns.max()), float(row))]
    ui.choose_stroke_label(STROKE_OBJECT_KEY)
    ui.paint(stroke)
    ui.choose_smart_keypoint()
    before = ui.canvas_pixels()
    click = (float(np.median(columns)), float(row + 30))
    assert truth[int(click[1]), int(click[0])]
    first = ui.click_for_mask(*click)
    session.timings.setdefault("click at once", []).append(first.seconds)
    first_mask = suggested_mask(first, width, height)
    covered = first_mask[line(stroke, truth.shape, 3)].mean()
    assert covered == 1.0, f"{covered:.3f} of the stroke painted just before the click is in the mask" + debug(
        session, ui
    )
    ui.wait_for_suggestion_shown()
    assert shown_iou(ui, before, first_mask, 0.75) >= 0.75
    screenshot(ui, "suggestion")

    if os.environ.get("LS_DEBUG_DIR"):
        Image.fromarray((first_mask * 255).astype(np.uint8)).save(Path(os.environ["LS_DEBUG_DIR"]) / "photo-round1.png")
    # The leak: the largest part of the mask off the object, wide enough to paint on.
    off_object = (first_mask & ~cv2.dilate(truth.astype(np.uint8), np.ones((17, 17), np.uint8)).astype(bool)).astype(
        np.uint8
    )
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(cv2.erode(off_object, np.ones((9, 9), np.uint8)))
    assert count >= 2, f"round 1 (IoU {iou(first_mask, truth):.3f}) no longer leaks: pick another photograph" + debug(
        session, ui
    )
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    leak = first_mask & ~truth & (cv2.dilate((labels == largest).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0)
    _, leak_y = centroids[largest]
    run = np.nonzero(labels[int(leak_y)] == largest)[0]
    negative_stroke = [(float(run.min() + 3), float(int(leak_y))), (float(run.max() - 3), float(int(leak_y)))]

    # Round 2: a Background stroke over the leak, the click at once.
    ui.choose_stroke_label(STROKE_BACKGROUND_KEY)
    ui.paint(negative_stroke)
    ui.choose_smart_keypoint()
    second = ui.click_for_mask(click[0] + 10, click[1])
    session.timings.setdefault("click at once", []).append(second.seconds)
    second_mask = suggested_mask(second, width, height)
    print(f"\nphotograph: round 1 IoU {iou(first_mask, truth):.3f}, round 2 IoU {iou(second_mask, truth):.3f}, "
          f"leak {int(leak.sum())} px, {int((second_mask & leak).sum())} left")  # fmt: skip
    assert (second_mask & leak).sum() <= 0.1 * leak.sum(), "the leak under the Background stroke survived"
    assert iou(second_mask, truth) >= 0.85
    ui.wait_for_suggestion_shown()
    screenshot(ui, "after-negative-stroke")

    # Round 3 after a pause: the call already carries the draft, no waiting on it.
    ui.page.wait_for_timeout(6500)
    ui.choose_smart_keypoint()
    ui.page.wait_for_timeout(6500)
    paused = ui.click_for_mask(click[0] - 10, click[1])
    session.timings.setdefault("click after a 6.5 s pause", []).append(paused.seconds)
    assert iou(suggested_mask(paused, width, height), truth) >= 0.85

    # Accept and submit: the stored annotation holds the mask.
    ui.wait_for_suggestion_shown()
    ui.accept()
    ui.page.wait_for_timeout(500)
    screenshot(ui, "accepted")
    annotation = ui.submit(task_id)
    [stored] = stored_masks(session.label_studio, task_id, annotation["id"], width, height)
    assert iou(stored, truth) >= 0.85
    ui.page.close()


def test_two_touching_discs_of_one_class_each_their_own_region(session: AnnotatorSession, tmp_path: Path) -> None:
    task = open_disc_task(session, tmp_path, "touching discs", touching=True)
    ui, disc_a, disc_b, task_id = task.ui, task.disc_a, task.disc_b, task.task_id
    height, width = task.size

    ui.choose_stroke_label(STROKE_BACKGROUND_KEY)
    for stroke in background_frame(width, height):
        ui.paint(stroke)
    # Disc A: a stroke, a click on it, an Alt+click on its neighbour B; accept.
    ui.choose_stroke_label(STROKE_OBJECT_KEY)
    ui.paint([(100, 150), (170, 150)])
    ui.choose_smart_keypoint()
    ui.click_for_mask(140, 175)
    ui.choose_smart_keypoint()
    first = ui.click_for_mask(290, 120, negative=True)
    mask_a = suggested_mask(first, width, height)
    assert iou(mask_a, disc_a) >= 0.9, debug(session, ui)
    ui.wait_for_suggestion_shown()
    ui.accept()
    ui.page.wait_for_timeout(500)

    # Disc B: a stroke and a click on it; A's stroke and accepted mask are another instance.
    ui.choose_stroke_label(STROKE_OBJECT_KEY)
    ui.paint([(250, 150), (310, 150)])
    ui.choose_smart_keypoint()
    second = ui.click_for_mask(280, 175)
    mask_b = suggested_mask(second, width, height)
    assert iou(mask_b, disc_b) >= 0.9
    ui.wait_for_suggestion_shown()
    ui.accept()
    ui.page.wait_for_timeout(500)
    screenshot(ui, "two-instances")

    annotation = ui.submit(task_id)
    stored = stored_masks(session.label_studio, task_id, annotation["id"], width, height)
    assert len(stored) == 2
    assert max(iou(mask, disc_a) for mask in stored) >= 0.9
    assert max(iou(mask, disc_b) for mask in stored) >= 0.9
    ui.page.close()


def test_reject_then_repaint_and_erase(session: AnnotatorSession, tmp_path: Path) -> None:
    """Reject: nothing of the rejected mask survives the repaint. Eraser: the erased stroke's effect goes."""
    # A stroke over both discs: the mask covers both; rejected.
    task = stroke_over_both_discs(session, tmp_path, "reject and erase")
    ui, disc_a, disc_b = task.ui, task.disc_a, task.disc_b
    height, width = task.size
    ui.wait_for_suggestion_shown()
    ui.reject()

    # The eraser (narrower than the brush: three passes) takes the stroke off disc B and
    # the gap between; a click at once: disc A only.
    ui.select_region("brushregion", 0)
    ui.choose_eraser()
    for row in (146, 150, 154):
        ui.paint([(172, row), (330, row)])
    ui.choose_smart_keypoint()
    erased = suggested_mask(ui.click_for_mask(110, 175), width, height)
    assert iou(erased, disc_a) >= 0.9, "the erased part of the stroke still counts" + debug(session, ui)
    assert (erased & disc_b).sum() <= 0.05 * disc_b.sum()
    ui.page.close()


def test_a_changed_image_gets_its_own_mask(session: AnnotatorSession, tmp_path: Path) -> None:
    """The task's image replaced (same task id, same strokes): the mask is the new image's, never the old one's."""
    task = stroke_over_both_discs(session, tmp_path, "changed image")
    image, disc_a, disc_b, project_id, task_id = task.image, task.disc_a, task.disc_b, task.project_id, task.task_id
    height, width = task.size
    ui = task.ui

    # The same task now shows an image with disc A only (B painted over with the background).
    only_a = image.copy()
    noise = np.random.default_rng(7).normal(0, 14, (int(disc_b.sum()), 3))
    only_a[disc_b] = np.clip(np.array([60, 90, 170]) + noise, 0, 255).astype(np.uint8)
    client = session.label_studio.client
    client.import_image(project_id, save_image(only_a, tmp_path / "only-a.png"))
    [new_url] = [task["data"]["image"] for task in client.list_tasks(project_id) if task["id"] != task_id]
    client.request("PATCH", f"/api/tasks/{task_id}", json={"data": {"image": new_url}})
    ui.page.close()

    ui = session.open(project_id, task_id, width, height)
    ui.choose_stroke_label(STROKE_OBJECT_KEY)
    ui.paint(STROKE_OVER_BOTH)
    ui.choose_smart_keypoint()
    # Off the first click: the reopened task shows the draft, first keypoint included,
    # and a click on a region selects it instead of asking for a mask.
    changed = suggested_mask(ui.click_for_mask(95, 185), width, height)
    # The stroke still crosses where B was, so the mask is disc A plus that stroke's line;
    # nothing else of the old image's mask (disc B) remains.
    stroke_band = line(STROKE_OVER_BOTH, disc_a.shape, 15)
    assert iou(changed & ~stroke_band, disc_a & ~stroke_band) >= 0.9, (
        "the mask does not follow the changed image" + debug(session, ui)
    )
    assert (changed & disc_b & ~stroke_band).sum() <= 0.02 * disc_b.sum()
    ui.page.close()


def test_strokes_that_cannot_be_had_give_a_message_not_a_stale_mask(session: AnnotatorSession, tmp_path: Path) -> None:
    """A backend that waits less than Label Studio's 5 s autosave: the annotator reads why, in the labeling UI."""
    impatient = BackendServer(session.label_studio.url, session.label_studio.token, {"DRAFT_WAIT_SECONDS": "1"}).start()
    try:
        image, disc_a, _ = two_disc_scene(touching=False)
        height, width = disc_a.shape
        client = session.label_studio.client
        project = client.create_project("impatient backend", LABEL_CONFIG)
        client.import_image(project["id"], save_image(image, tmp_path / "discs.png"))
        [task] = client.list_tasks(project["id"])
        client.add_ml_backend(project["id"], impatient.url, title="impatient", is_interactive=True)
        ui = session.open(project["id"], task["id"], width, height)
        ui.choose_stroke_label(STROKE_OBJECT_KEY)
        ui.paint([(85, 150), (135, 150)])
        ui.choose_smart_keypoint()
        answer = ui.click_for_mask(110, 175)
        [message] = answer.regions
        assert message["type"] == "textarea" and message["from_name"] == "message"
        text = message["value"]["text"][0]
        assert text.startswith("Strokes not reached: Label Studio saved no draft holding this click within 1 s")
        # The annotator sees it in the labeling UI.
        ui.page.get_by_text("Strokes not reached", exact=False).first.wait_for()
        screenshot(ui, "message")
        ui.page.close()
    finally:
        impatient.stop()
