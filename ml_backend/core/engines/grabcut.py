"""OpenCV GrabCut seeded by the strokes and the current mask. Needs no weights."""

from __future__ import annotations

import cv2
import numpy as np

from ...engine_registry import GRABCUT
from ..engine import Embedding, Engine, Prediction
from ..prompts import Prompts


def seed_labels(prompts: Prompts, band_px: int) -> np.ndarray:
    """GrabCut's four-level trimap from what the user gave.

    Strokes are certain; the current mask (or, without one, a band around the
    positive strokes and clicks) is "probably object"; the rest "probably not".
    A box makes everything outside it certain background.
    """
    height, width = prompts.shape
    labels = np.full((height, width), cv2.GC_PR_BGD, np.uint8)
    if prompts.current_mask is not None and prompts.current_mask.any():
        labels[prompts.current_mask] = cv2.GC_PR_FGD
    else:
        seeds = prompts.positive_scribbles.astype(np.uint8)
        for x, y in prompts.positive_points:
            cv2.circle(seeds, (int(x), int(y)), max(2, band_px // 5), 1, -1)
        if seeds.any():
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band_px + 1, 2 * band_px + 1))
            labels[cv2.dilate(seeds, kernel) > 0] = cv2.GC_PR_FGD
        elif prompts.box is not None:
            x0, y0, x1, y1 = prompts.box.astype(int)
            labels[y0:y1, x0:x1] = cv2.GC_PR_FGD
    if prompts.box is not None:
        x0, y0, x1, y1 = prompts.box.astype(int)
        outside = np.ones((height, width), bool)
        outside[y0:y1, x0:x1] = False
        labels[outside] = cv2.GC_BGD
    negative = prompts.negative_scribbles.copy()
    positive = prompts.positive_scribbles.copy()
    for (x, y), label in zip(prompts.points, prompts.point_labels):
        target = positive if label == 1 else negative
        cv2.circle(target.view(np.uint8), (int(x), int(y)), 2, 1, -1)
    labels[negative] = cv2.GC_BGD
    labels[positive] = cv2.GC_FGD
    return labels


def run_grabcut(image: np.ndarray, labels: np.ndarray, iterations: int) -> np.ndarray:
    """Runs GrabCut on a trimap; returns the object mask. Degenerate trimaps are handled."""
    certain_or_probable_fg = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    certain_or_probable_bg = (labels == cv2.GC_BGD) | (labels == cv2.GC_PR_BGD)
    # GrabCut's colour models need samples of both sides; without them there is
    # nothing to separate and it would raise.
    if not certain_or_probable_fg.any() or not certain_or_probable_bg.any():
        return certain_or_probable_fg
    mask = labels.copy()
    background_model = np.zeros((1, 65), np.float64)
    foreground_model = np.zeros((1, 65), np.float64)
    bgr = np.ascontiguousarray(image[:, :, ::-1])
    # GrabCut's GMM initialisation draws random numbers: seed them (per thread)
    # so that the same request always gives the same mask.
    cv2.setRNGSeed(0)
    cv2.grabCut(bgr, mask, None, background_model, foreground_model, iterations, cv2.GC_INIT_WITH_MASK)
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


class GrabCutEngine(Engine):
    """Plain GrabCut: the reference that other engines are measured against."""

    name = GRABCUT.name

    def __init__(self, iterations: int = 5, band_px: int = 25) -> None:
        self.iterations = iterations
        self.band_px = band_px

    @property
    def identity(self) -> str:
        # The embedding is the image itself: no parameter shapes it.
        return "grabcut/v2"

    def embed(self, image: np.ndarray) -> Embedding:
        # GrabCut has no learnt features: the image itself is its embedding.
        return Embedding(self.identity, image.shape[:2], {"image": np.ascontiguousarray(image, np.uint8)})

    def predict(self, embedding: Embedding, prompts: Prompts) -> Prediction:
        self.check_embedding(embedding, prompts)
        image = embedding.arrays["image"]
        labels = seed_labels(prompts, self.band_px)
        mask = run_grabcut(image, labels, self.iterations)
        return Prediction(mask=mask, score=_agreement_score(mask, labels))


def _agreement_score(mask: np.ndarray, labels: np.ndarray) -> float:
    """How far the result agrees with the "probably" seeds: a rough confidence in [0, 1]."""
    probable = (labels == cv2.GC_PR_FGD) | (labels == cv2.GC_PR_BGD)
    if not probable.any():
        return 1.0
    expected_object = labels == cv2.GC_PR_FGD
    return float(np.mean(mask[probable] == expected_object[probable]))

