"""The SAM family honours a negative stroke on a touching neighbour (shipped LiteMedSAM weights).

LiteMedSAM takes boxes only (points confused it, see ``LiteMedSamEngine``), so a
negative stroke acts through the box: the part of the previous mask it claims
is left out of the box drawn from that mask.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ml_backend.core.engines.sam_checkpoints import load_litemedsam
from ml_backend.core.prompts import make_prompts
from ml_backend.core.stroke_prompts import claimed_by_negative_strokes


def touching_discs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    height, width = 256, 256
    left = np.zeros((height, width), np.uint8)
    right = np.zeros((height, width), np.uint8)
    cv2.circle(left, (98, 128), 40, 1, -1)
    cv2.circle(right, (176, 128), 40, 1, -1)
    left, right = left.astype(bool), right.astype(bool)
    image = np.full((height, width, 3), 40.0)
    image[left | right] = 180
    image += np.random.default_rng(0).normal(0, 5, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), left, right


def cross(shape: tuple[int, int], centre: tuple[int, int], half: int) -> np.ndarray:
    strokes = np.zeros(shape, bool)
    x, y = centre
    strokes[y - 2 : y + 2, x - half : x + half] = True
    strokes[y - half : y + half, x - 2 : x + 2] = True
    return strokes


@pytest.fixture(scope="module")
def litemedsam():
    return load_litemedsam()


def test_a_negative_stroke_on_a_touching_neighbour_removes_it_from_litemedsams_mask(litemedsam):
    image, left, right = touching_discs()
    embedding = litemedsam.embed(image)
    positive = cross(left.shape, (98, 128), 30)
    negative = cross(left.shape, (176, 128), 25)
    # The previous round took both discs; the annotator marks the right one as not wanted.
    current = left | right
    without = litemedsam.predict(embedding, make_prompts(image.shape, positive, np.zeros_like(negative), current_mask=current))
    assert (without.mask & right).sum() > 0.9 * right.sum()  # the box of the mask covers both discs
    with_negative = litemedsam.predict(embedding, make_prompts(image.shape, positive, negative, current_mask=current))
    assert (with_negative.mask & right).sum() < 0.05 * right.sum()
    iou = (with_negative.mask & left).sum() / (with_negative.mask | left).sum()
    assert iou >= 0.9


def test_a_negative_stroke_claims_the_part_of_the_mask_it_lies_on_not_what_lies_beyond_a_gap():
    shape = (60, 120)
    current = np.zeros(shape, bool)
    current[10:50, 10:50] = True  # target
    current[10:50, 50:90] = True  # touching neighbour
    current[10:50, 95:115] = True  # a separate part, beyond a gap, nearer the negative stroke
    positive = np.zeros(shape, bool)
    negative = np.zeros(shape, bool)
    positive[30, 20:40] = True
    negative[30, 60:80] = True
    claimed = claimed_by_negative_strokes(current, positive, negative)
    assert claimed[10:50, 55:90].all() and not claimed[10:50, 10:45].any()
    # Distances run inside the mask: across the gap they are unreachable, not short.
    assert not claimed[10:50, 95:115].any()


def test_on_real_scans_a_negative_stroke_on_a_wrongly_included_touching_structure_removes_most_of_it(litemedsam):
    """MedScribble's hip X-rays (femur beside pelvis) and blood smears (a white cell among red
    ones): LiteMedSAM from the annotators' positive strokes takes in a touching structure;
    the robot's negative stroke on it must remove most of it."""
    from ml_backend.core.segmenter import Segmenter
    from ml_backend.tools.evaluation import metrics, robot
    from ml_backend.tools.evaluation.datasets import discover_samples, load_sample
    from tests.support.data import shared_dataset

    segmenter = Segmenter(litemedsam)
    removed, improved = [], []
    for sample in discover_samples(shared_dataset("MedScribble"), "scribbles"):
        if not sample.name.startswith(("HipXRay", "WBC")):
            continue
        loaded = load_sample(sample)
        truth, positive = loaded.ground_truth, loaded.positive_scribbles
        first = segmenter.segment(loaded.image, make_prompts(truth.shape, positive, np.zeros_like(positive))).mask
        stroke = robot.corrective_stroke(truth, first, loaded.void)
        if stroke is None or stroke.positive:
            continue
        _, parts = cv2.connectedComponents((first & ~truth).astype(np.uint8))
        region = np.isin(parts, np.unique(parts[stroke.pixels])) & (parts > 0)
        assert (cv2.dilate(truth.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)[region].any()  # it touches
        second = segmenter.segment(
            loaded.image, make_prompts(truth.shape, positive, stroke.pixels, current_mask=first)
        ).mask
        removed.append(1 - (second & region).sum() / region.sum())
        improved.append(metrics.iou(second, truth, loaded.void) > metrics.iou(first, truth, loaded.void))
    # 28 strokes; without removing what the strokes claim inside the box: 0.67 and 0.82.
    assert len(removed) >= 20
    assert np.median(removed) >= 0.75
    assert np.mean(improved) >= 0.85
