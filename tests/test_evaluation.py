"""The scribble benchmark: metrics, robot annotator, NoS and the runner, on tiny synthetic data."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from ml_backend.core.engine import Embedding, Engine, Prediction
from ml_backend.core.prompts import Prompts
from ml_backend.tools.evaluation import metrics, robot
from ml_backend.tools.evaluation.cli import add_eval_parser
from ml_backend.tools.evaluation.datasets import discover_samples, load_sample
from ml_backend.tools.evaluation.runner import as_segment_function, evaluate_sample, format_table, run_benchmark

SUMMARY_KEYS = {
    "miou_at",
    "nos_85",
    "nos_90",
    "nos_85_failures",
    "nos_90_failures",
    "miou_first",
    "biou_first",
    "seconds_per_round_median",
    "count",
}


def box(shape: tuple[int, int], top: int, bottom: int, left: int, right: int) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[top:bottom, left:right] = True
    return mask


def disc(shape: tuple[int, int], center_row: int, center_column: int, radius: int) -> np.ndarray:
    rows, columns = np.ogrid[: shape[0], : shape[1]]
    return (rows - center_row) ** 2 + (columns - center_column) ** 2 <= radius**2


# --- metrics -----------------------------------------------------------------


def test_iou_counts_overlap_over_union() -> None:
    prediction = box((4, 4), 0, 2, 0, 2)  # 4 pixels
    truth = box((4, 4), 0, 2, 0, 3)  # 6 pixels, containing the prediction
    assert metrics.iou(prediction, truth) == pytest.approx(4 / 6)
    assert metrics.iou(np.zeros((4, 4), bool), np.zeros((4, 4), bool)) == 1.0
    assert metrics.iou(np.zeros((4, 4), bool), truth) == 0.0


def test_iou_leaves_void_pixels_out() -> None:
    prediction = box((4, 4), 0, 2, 0, 2)
    truth = box((4, 4), 0, 2, 0, 3)
    void = box((4, 4), 0, 4, 2, 3)  # the column where they disagree
    assert metrics.iou(prediction, truth, void) == 1.0
    # Void over agreeing pixels shrinks both intersection and union: 2 / 4.
    void_left = box((4, 4), 0, 2, 0, 1)
    assert metrics.iou(prediction, truth, void_left) == pytest.approx(2 / 4)


def test_boundary_band_width_is_two_percent_of_the_diagonal() -> None:
    assert metrics.boundary_band_width((300, 400)) == 10  # diagonal 500
    assert metrics.boundary_band_width((30, 40)) == 1  # diagonal 50
    assert metrics.boundary_band_width((10, 10)) == 1  # 0.28 rounds to 0, at least 1


def test_boundary_band_is_the_mask_minus_its_erosion() -> None:
    square = box((7, 7), 1, 6, 1, 6)  # 5x5
    band = metrics.boundary_band(square, 1)
    assert band.sum() == 25 - 9
    assert not band[2:5, 2:5].any()
    # The image frame counts as boundary: a mask filling the image has a band along it.
    assert metrics.boundary_band(np.ones((5, 5), bool), 1).sum() == 25 - 9


def test_boundary_iou_of_a_square_shifted_by_one_pixel() -> None:
    shape = (30, 40)  # diagonal 50: band 1 pixel wide
    truth = box(shape, 5, 15, 5, 15)  # 10x10, ring of 36 pixels
    prediction = box(shape, 5, 15, 6, 16)  # same square one column to the right
    # The rings share the top and bottom rows over columns 6..14: 2 x 9 pixels.
    assert metrics.boundary_iou(prediction, truth) == pytest.approx(18 / (36 + 36 - 18))
    assert metrics.iou(prediction, truth) == pytest.approx(90 / 110)
    # Void over columns 0..5 and 14..39 leaves the rings' top and bottom rows
    # (16 pixels each) and the prediction's left side (8 more): 16 / 24.
    void = np.zeros(shape, bool)
    void[:, :6] = True
    void[:, 14:] = True
    assert metrics.boundary_iou(prediction, truth, void) == pytest.approx(16 / 24)


def test_strokes_to_reach_counts_round_one_as_one_stroke() -> None:
    ious = [0.5, 0.86, 0.91]
    assert metrics.strokes_to_reach(ious, 0.85, 20) == (2, True)
    assert metrics.strokes_to_reach(ious, 0.90, 20) == (3, True)
    assert metrics.strokes_to_reach([0.95], 0.90, 20) == (1, True)
    assert metrics.strokes_to_reach([0.5] * 20, 0.85, 20) == (20, False)


def test_summary_means_nos_and_counts_failures() -> None:
    ious = [
        [0.80, 0.86, 0.92, 0.92],  # NoS@85 = 2, NoS@90 = 3
        [0.91, 0.91, 0.91, 0.91],  # 1, 1
        [0.10, 0.20, 0.30, 0.40],  # never: 4, 4
    ]
    boundary = [[0.5] * 4, [0.7] * 4, [0.0] * 4]
    summary = metrics.summarize(ious, boundary, [1.0, 10.0, 2.0], max_interactions=4)
    assert summary["count"] == 3
    assert summary["nos_85"] == pytest.approx((2 + 1 + 4) / 3)
    assert summary["nos_90"] == pytest.approx((3 + 1 + 4) / 3)
    assert summary["nos_85_failures"] == 1
    assert summary["nos_90_failures"] == 1
    assert summary["miou_at"] == pytest.approx([(0.80 + 0.91 + 0.10) / 3, (0.86 + 0.91 + 0.20) / 3,
                                                (0.92 + 0.91 + 0.30) / 3, (0.92 + 0.91 + 0.40) / 3])
    assert summary["miou_first"] == pytest.approx((0.80 + 0.91 + 0.10) / 3)
    assert summary["biou_first"] == pytest.approx(0.4)
    assert summary["seconds_per_round_median"] == 2.0


# --- robot -------------------------------------------------------------------


def test_brush_width_is_one_percent_of_the_diagonal_at_least_three() -> None:
    assert robot.brush_width((480, 640)) == 8  # diagonal 800
    assert robot.brush_width((3000, 4000)) == 50
    assert robot.brush_width((100, 100)) == 3  # 1.4 rounds to 1, at least 3


def test_a_stroke_is_as_wide_as_the_brush() -> None:
    truth = box((480, 640), 200, 230, 100, 500)  # a bar 30 pixels high
    stroke = robot.corrective_stroke(truth, None)
    assert stroke is not None and stroke.positive
    column = stroke.pixels[:, 300]
    assert column.sum() == robot.brush_width((480, 640))
    # Along the bar's middle, not its edge, and along most of its length.
    assert abs(np.nonzero(column)[0].mean() - 214.5) <= 1.0
    assert stroke.pixels.any(axis=0).sum() > 0.9 * 400


def test_a_missed_square_gets_a_positive_stroke_inside_it() -> None:
    shape = (100, 120)
    truth = box(shape, 20, 60, 30, 70)
    stroke = robot.corrective_stroke(truth, np.zeros(shape, bool))
    assert stroke is not None
    assert stroke.positive
    assert stroke.pixels.any()
    assert not (stroke.pixels & ~truth).any()
    # A square thins to (nearly) its centre, so the stroke dabs the middle.
    assert stroke.pixels[38:42, 48:52].any()


def test_a_wrongly_included_blob_gets_a_negative_stroke_inside_it() -> None:
    shape = (100, 120)
    truth = box(shape, 20, 60, 10, 50)
    blob = disc(shape, 50, 90, 12)
    stroke = robot.corrective_stroke(truth, truth | blob)
    assert stroke is not None
    assert not stroke.positive
    assert stroke.pixels.any()
    assert not (stroke.pixels & ~blob).any()


def test_the_deeper_error_wins() -> None:
    shape = (100, 140)
    truth = box(shape, 10, 90, 10, 70)
    small_hole = box(shape, 40, 46, 30, 36)  # 6x6 missed: depth 3
    big_blob = disc(shape, 50, 110, 15)  # wrongly included: depth 15
    stroke = robot.corrective_stroke(truth, (truth & ~small_hole) | big_blob)
    assert stroke is not None and not stroke.positive
    assert not (stroke.pixels & ~big_blob).any()

    big_hole = disc(shape, 50, 40, 20)
    small_blob = box(shape, 47, 53, 100, 106)
    stroke = robot.corrective_stroke(truth, (truth & ~big_hole) | small_blob)
    assert stroke is not None and stroke.positive
    assert not (stroke.pixels & ~big_hole).any()


def test_the_image_frame_is_not_a_boundary_for_depth() -> None:
    shape = (60, 200)
    # A missed strip 10 rows high along the top edge is 10 deep (5 if the frame counted)...
    strip = box(shape, 0, 10, 0, 200)
    # ... and a wrongly included disc of radius 7 is about 8 deep.
    blob = disc(shape, 40, 100, 7)
    truth = strip
    stroke = robot.corrective_stroke(truth, blob)
    assert stroke is not None and stroke.positive
    assert robot.inscribed_depth(strip).max() == pytest.approx(10.0)


def test_strokes_never_touch_void() -> None:
    shape = (100, 120)
    truth = box(shape, 20, 80, 20, 100)
    void = box(shape, 45, 55, 0, 120)  # a band across the object's middle
    stroke = robot.corrective_stroke(truth, None, void)
    assert stroke is not None and stroke.positive
    assert stroke.pixels.any()
    assert not (stroke.pixels & void).any()
    assert not (stroke.pixels & ~truth).any()
    # Errors only inside void leave nothing to correct.
    assert robot.corrective_stroke(truth, truth & ~void, void) is None
    assert robot.corrective_stroke(truth, truth) is None


def test_a_sliver_the_opening_would_erase_still_gets_its_stroke() -> None:
    shape = (40, 60)
    sliver = box(shape, 20, 21, 5, 55)  # one pixel high: a 3x3 opening removes it
    stroke = robot.corrective_stroke(sliver, None)
    assert stroke is not None and stroke.positive
    assert stroke.pixels.sum() == 50  # the whole line, clipped to it
    assert not (stroke.pixels & ~sliver).any()


def test_the_robot_is_deterministic() -> None:
    rng = np.random.default_rng(3)
    truth = cv2.GaussianBlur(rng.random((90, 110)), (0, 0), 5) > 0.5
    current = cv2.GaussianBlur(rng.random((90, 110)), (0, 0), 5) > 0.5
    first = robot.corrective_stroke(truth, current)
    second = robot.corrective_stroke(truth.copy(), current.copy())
    assert first is not None and second is not None
    assert first.positive == second.positive
    assert np.array_equal(first.pixels, second.pixels)
    error = (truth & ~current) if first.positive else (current & ~truth)
    assert not (first.pixels & ~error).any()


def test_the_first_dab_lies_off_centre_at_half_the_depth_inside_the_object() -> None:
    truth = disc((120, 160), 60, 80, 40)
    dab = robot.first_dab(truth)
    assert dab is not None and dab.positive
    rows, columns = np.nonzero(dab.pixels)
    distance_from_centre = np.hypot(rows.mean() - 60, columns.mean() - 80)
    assert 15 <= distance_from_centre <= 25  # depth 20 of 40
    width = robot.brush_width(truth.shape)
    assert abs(columns.max() - columns.min() + 1 - 3 * width) <= 2
    assert not (dab.pixels & ~truth).any()
    assert robot.first_dab(truth, void=truth) is None


def test_longest_skeleton_path_follows_the_main_branch() -> None:
    skeleton = np.zeros((50, 50), bool)
    skeleton[10, 5:31] = True  # arm along row 10
    skeleton[10:41, 30] = True  # arm down column 30
    skeleton[11:14, 15] = True  # a short spur
    path = robot.longest_skeleton_path(skeleton, near=(10, 15))
    ends = {tuple(path[0]), tuple(path[-1])}
    assert ends == {(10, 5), (40, 30)}
    # The spur's tip is off every shortest route between the two ends.
    assert not any(row in (12, 13) and column == 15 for row, column in path)
    steps = np.abs(np.diff(path, axis=0)).max(axis=1)
    assert (steps == 1).all()  # 8-connected, no jumps


def test_skeleton_of_a_bar_is_one_pixel_thick() -> None:
    bar = box((20, 60), 5, 12, 5, 55)
    skeleton = robot.skeletonize(bar)
    assert skeleton.any()
    assert not (skeleton & ~bar).any()
    assert skeleton[:, 15:45].sum(axis=0).max() == 1


# --- runner ------------------------------------------------------------------


def stroke_painter(image: np.ndarray, prompts: Prompts) -> np.ndarray:
    """A trivial engine: the mask so far, plus the positive strokes, minus the negative ones."""
    current = prompts.current_mask if prompts.current_mask is not None else np.zeros(prompts.shape, bool)
    return (current | prompts.positive_scribbles) & ~prompts.negative_scribbles


def write_dataset(root: Path, with_annotators: bool = False) -> Path:
    """Three 60x80 images with a rectangle or an ellipse, void around one object, real scribbles."""
    rng = np.random.default_rng(0)
    for folder in ("images", "masks", "void", "scribbles"):
        (root / folder).mkdir(parents=True)
    shapes = {
        "a": box((60, 80), 15, 45, 20, 60),
        "b": disc((60, 80), 30, 40, 18),
        "c": box((60, 80), 5, 30, 5, 75),
    }
    for stem, mask in shapes.items():
        image = np.where(mask[:, :, None], 190, 60) + rng.integers(0, 30, (60, 80, 3))
        cv2.imwrite(str(root / "images" / f"{stem}.png"), image.astype(np.uint8))
        cv2.imwrite(str(root / "masks" / f"{stem}.png"), mask.astype(np.uint8) * 255)
        scribble = np.zeros((60, 80), np.uint8)
        rows, columns = np.nonzero(mask)
        scribble[int(rows.mean()), columns.min() + 3 : columns.max() - 3] = 255
        scribble[57, 2:78] = 128
        names = [f"{stem}__ann0", f"{stem}__ann1"] if with_annotators else [stem]
        for index, name in enumerate(names):
            cv2.imwrite(str(root / "scribbles" / f"{name}.png"), np.roll(scribble, index, axis=0))
    void = metrics.boundary_band(shapes["a"], 1)
    cv2.imwrite(str(root / "void" / "a.png"), void.astype(np.uint8) * 255)
    return root


def test_dataset_discovery_splits_annotators_into_samples(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "set", with_annotators=True)
    samples = discover_samples(root, "scribbles")
    assert [sample.name for sample in samples] == ["a__ann0", "a__ann1", "b__ann0", "b__ann1", "c__ann0", "c__ann1"]
    assert {sample.image_stem for sample in samples} == {"a", "b", "c"}
    loaded = load_sample(samples[0])
    assert loaded.image.shape == (60, 80, 3)
    assert loaded.void.any() and loaded.positive_scribbles.any() and loaded.negative_scribbles.any()
    assert len(discover_samples(root)) == 3


def test_runner_end_to_end_improves_iou_and_reports_every_key(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "set")
    samples = discover_samples(root, "scribbles")
    report = run_benchmark(samples, {"painter": stroke_painter}, max_interactions=8, progress=False)
    summary = report["engines"]["painter"]
    assert SUMMARY_KEYS <= set(summary)
    assert summary["count"] == 3
    assert len(summary["miou_at"]) == 8
    assert summary["miou_at"][-1] > summary["miou_at"][0] + 0.2
    assert all(later >= earlier - 1e-9 for earlier, later in zip(summary["miou_at"], summary["miou_at"][1:]))
    for details in summary["samples"]:
        assert len(details["iou"]) == len(details["boundary_iou"]) == 8
        assert details["strokes"][0] == "scribbles"
        assert set(details["strokes"][1:]) <= {"positive", "negative"}
        assert 1 <= details["rounds_run"] == len(details["seconds"]) <= 8
    json.dumps(report)  # serialisable as it is
    table = format_table(report)
    assert "painter" in table and "NoS@90" in table


def test_runner_without_scribbles_starts_with_a_robot_stroke(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "set")
    samples = discover_samples(root)
    report = run_benchmark(samples, {"painter": stroke_painter}, max_interactions=5, progress=False)
    for details in report["engines"]["painter"]["samples"]:
        assert details["strokes"][0] == "positive"
        assert 0.0 < details["iou"][0] < details["iou"][-1]


def test_runner_can_start_with_a_dab_instead_of_the_scribbles(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "set")
    samples = discover_samples(root, "scribbles")
    report = run_benchmark(samples, {"painter": stroke_painter}, max_interactions=3, progress=False, first_dab=True)
    assert report["first_dab"] is True
    for sample, details in zip(samples, report["engines"]["painter"]["samples"]):
        loaded = load_sample(sample)
        expected = metrics.iou(robot.first_dab(loaded.ground_truth, loaded.void).pixels, loaded.ground_truth, loaded.void)
        assert details["strokes"][0] == "dab"
        assert details["iou"][0] == pytest.approx(expected)


def test_stop_at_ends_a_sample_and_carries_its_score(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "set")
    samples = discover_samples(root, "scribbles")
    loaded = load_sample(samples[1])
    full = evaluate_sample(loaded, as_segment_function(stroke_painter), 12)
    threshold = full.ious[2]
    assert full.ious[1] < threshold  # the painter climbs round by round on this sample
    stopped = evaluate_sample(loaded, as_segment_function(stroke_painter), 12, threshold)
    assert stopped.rounds_run == 3
    assert stopped.ious[:3] == full.ious[:3]
    assert stopped.ious[3:] == [threshold] * 9


class CountingEngine(Engine):
    """The painter as an Engine, counting how often it embeds and predicts."""

    name = "counting"

    def __init__(self) -> None:
        self.embeds = 0
        self.predicts = 0

    @property
    def identity(self) -> str:
        return "counting-v1"

    def embed(self, image: np.ndarray) -> Embedding:
        self.embeds += 1
        return Embedding(self.identity, image.shape[:2])

    def predict(self, embedding: Embedding, prompts: Prompts) -> Prediction:
        self.predicts += 1
        current = prompts.current_mask if prompts.current_mask is not None else np.zeros(prompts.shape, bool)
        return Prediction(mask=current.copy(), score=1.0)


def test_a_bare_engine_embeds_each_image_once_and_gets_hard_constraints(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "set", with_annotators=True)
    samples = discover_samples(root, "scribbles")
    engine = CountingEngine()
    report = run_benchmark(samples, {"counting": engine}, max_interactions=4, progress=False)
    details = report["engines"]["counting"]["samples"]
    assert engine.embeds == 3  # two annotators per image, one embedding per image
    assert engine.predicts == sum(sample["rounds_run"] for sample in details)
    # The engine itself only echoes the mask: the strokes come in as hard constraints.
    assert report["engines"]["counting"]["miou_at"][-1] > report["engines"]["counting"]["miou_at"][0]


def test_eval_command_writes_json_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_dataset(tmp_path / "set")
    parser = argparse.ArgumentParser()
    add_eval_parser(parser.add_subparsers(dest="command"))
    json_path, plot_path = tmp_path / "out" / "report.json", tmp_path / "out" / "curve.png"
    args = parser.parse_args([
        "eval", "--dataset", str(root), "--scribbles", "scribbles", "--engine", "grabcut",
        "--refine", "none", "--max-interactions", "3", "--limit", "2",
        "--json", str(json_path), "--plot", str(plot_path), "--no-progress",
    ])
    assert args.handler(args) == 0
    report = json.loads(json_path.read_text())
    summary = report["engines"]["grabcut"]
    assert SUMMARY_KEYS <= set(summary)
    assert summary["count"] == 2 and len(summary["miou_at"]) == 3
    assert summary["miou_first"] > 0.5  # GrabCut separates the bright object from the dark ground
    assert plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "grabcut" in capsys.readouterr().out


def test_eval_command_starts_with_a_dab_when_asked(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "set")
    parser = argparse.ArgumentParser()
    add_eval_parser(parser.add_subparsers(dest="command"))
    json_path = tmp_path / "report.json"
    args = parser.parse_args([
        "eval", "--dataset", str(root), "--engine", "grabcut", "--max-interactions", "2", "--first-dab",
        "--json", str(json_path), "--no-progress",
    ])
    assert args.handler(args) == 0
    report = json.loads(json_path.read_text())
    assert report["first_dab"] is True
    assert {details["strokes"][0] for details in report["engines"]["grabcut"]["samples"]} == {"dab"}


def test_eval_command_names_a_missing_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_eval_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["eval", "--dataset", str(tmp_path / "nowhere")])
    assert args.handler(args) == 2
    assert "images" in capsys.readouterr().err
