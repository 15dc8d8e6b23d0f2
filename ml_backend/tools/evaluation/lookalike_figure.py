"""The README's picture of touching look-alikes: target, strokes, the default engine's mask, plain GrabCut's.

``python -m ml_backend.tools.evaluation.lookalike_figure DATASET OUT.png CASE...`` with
DATASET a folder laid out like ``COCO128-instances`` (round 1 from
``scribbles_neighbours``). Each row is one case: the target (green outline) with
the strokes (yellow positive, red negative), the default engine as served
(``maskrefine``) and plain GrabCut on the same strokes, each with its IoU.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from ...core.prompts import make_prompts
from ...core.segmenter import Segmenter
from ...engine_registry import create_engine
from . import metrics
from .datasets import discover_samples, load_sample

ROW_WIDTH = 720
SCRIBBLES = "scribbles_neighbours"


def _panel(image_bgr: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int], label: str) -> np.ndarray:
    panel = image_bgr.copy()
    panel[mask] = (0.5 * panel[mask] + 0.5 * np.array(colour)).astype(np.uint8)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(panel, contours, -1, colour, 2)
    scale = max(1.0, image_bgr.shape[1] / 320)
    cv2.putText(panel, label, (6, int(24 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.7 * scale, (0, 0, 0), int(4 * scale))
    cv2.putText(panel, label, (6, int(24 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.7 * scale, (255, 255, 255), int(2 * scale))
    return panel


def figure(dataset: str, cases: list[str]) -> np.ndarray:
    samples = {sample.name: sample for sample in discover_samples(dataset, SCRIBBLES)}
    missing = [case for case in cases if case not in samples]
    if missing:
        raise SystemExit(f"cases: not in {dataset}/{SCRIBBLES}: {', '.join(missing)}")
    ours = Segmenter(create_engine("geodesic_grabcut"))
    plain = Segmenter(create_engine("grabcut"))
    rows = []
    for case in cases:
        loaded = load_sample(samples[case])
        prompts = make_prompts(loaded.image.shape, loaded.positive_scribbles, loaded.negative_scribbles)
        our_mask = ours.segment(loaded.image, prompts, refine="maskrefine").mask
        plain_mask = plain.segment(loaded.image, prompts, refine="none").mask
        bgr = np.ascontiguousarray(loaded.image[:, :, ::-1])
        target = _panel(bgr, loaded.ground_truth, (0, 200, 0), "target + strokes")
        brush = max(2, round(0.006 * float(np.hypot(*loaded.ground_truth.shape))))
        kernel = np.ones((brush, brush), np.uint8)
        target[cv2.dilate(loaded.positive_scribbles.astype(np.uint8), kernel) > 0] = (0, 255, 255)
        target[cv2.dilate(loaded.negative_scribbles.astype(np.uint8), kernel) > 0] = (0, 0, 255)
        our_iou = metrics.iou(our_mask, loaded.ground_truth, loaded.void)
        plain_iou = metrics.iou(plain_mask, loaded.ground_truth, loaded.void)
        row = np.concatenate(
            [
                target,
                _panel(bgr, our_mask, (255, 80, 0), f"default engine {our_iou:.2f}"),
                _panel(bgr, plain_mask, (200, 0, 200), f"plain GrabCut {plain_iou:.2f}"),
            ],
            axis=1,
        )
        scale = ROW_WIDTH / row.shape[1]
        rows.append(cv2.resize(row, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    return np.concatenate(rows, axis=0)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    dataset, out, cases = args[0], Path(args[1]), args[2:]
    out.parent.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    # 128 colours: a README picture, small enough to keep in the repository.
    rgb = figure(dataset, cases)[:, :, ::-1]
    Image.fromarray(np.ascontiguousarray(rgb)).quantize(colors=128).save(out, optimize=True)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
