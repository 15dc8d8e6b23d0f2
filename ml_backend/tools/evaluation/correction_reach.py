"""How far a correction round moves the mask away from its new strokes.

A corrective stroke speaks for the pixels around it. Whatever a round changes
far from its new strokes (more than ``FAR_PX`` pixels away) was not asked for:
this counts those pixels, round by round, with the robot's corrective strokes
(``robot.py``) after a first round from the dataset's real scribbles, the same
protocol as ``runner.py``.

    python -m ml_backend.tools.evaluation.correction_reach --dataset ../shared/datasets/GrabCut \\
        --scribbles scribbles_set2 --refine maskrefine --rounds 3 [--images llama person1]

Imports are absolute (``ml_backend...``), so the script can be pointed at another
checkout's code with ``PYTHONPATH`` to measure it before a change.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from ml_backend.core.prompts import make_prompts
from ml_backend.core.segmenter import Segmenter
from ml_backend.engine_registry import create_engine
from ml_backend.tools.evaluation import robot
from ml_backend.tools.evaluation.datasets import LoadedSample, discover_samples, load_sample

FAR_PX = 60


def far_changed_pixels(previous: np.ndarray, new: np.ndarray, new_strokes: np.ndarray, far_px: int = FAR_PX) -> int:
    """Pixels whose value differs between ``previous`` and ``new`` and that lie more than
    ``far_px`` pixels (Euclidean) from every pixel of ``new_strokes``."""
    changed = np.asarray(previous, bool) ^ np.asarray(new, bool)
    if not changed.any():
        return 0
    strokes = np.asarray(new_strokes, bool)
    if not strokes.any():
        return int(changed.sum())
    # distanceTransform measures to the nearest zero pixel: the strokes are the zeros.
    distance = cv2.distanceTransform((~strokes).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return int((changed & (distance > far_px)).sum())


@dataclass
class SampleReach:
    name: str
    far_pixels: list[int] = field(default_factory=list)  # one per correction round
    ious: list[float] = field(default_factory=list)  # one per round, the first included


def measure_sample(
    loaded: LoadedSample, segmenter: Segmenter, refine: str, rounds: int, far_px: int = FAR_PX
) -> SampleReach:
    """Round 1 from the sample's scribbles, then ``rounds - 1`` robot corrections."""
    from ml_backend.tools.evaluation.metrics import iou

    if loaded.positive_scribbles is None:
        raise ValueError(f"{loaded.sample.name}: needs first-round scribbles (--scribbles)")
    image, truth, void = loaded.image, loaded.ground_truth, loaded.void
    positive = loaded.positive_scribbles.copy()
    negative = (
        loaded.negative_scribbles.copy() if loaded.negative_scribbles is not None else np.zeros(truth.shape, bool)
    )
    result = SampleReach(loaded.sample.name)
    current = segmenter.segment(image, make_prompts(image.shape, positive, negative), refine=refine).mask
    result.ious.append(iou(current, truth, void))
    for _ in range(rounds - 1):
        stroke = robot.corrective_stroke(truth, current, void)
        if stroke is None:
            break
        # Only the new stroke is sent with the current mask: the previous strokes are
        # already in it, as a client of the API does from round to round.
        new_positive = stroke.pixels if stroke.positive else np.zeros_like(stroke.pixels)
        new_negative = np.zeros_like(stroke.pixels) if stroke.positive else stroke.pixels
        prompts = make_prompts(image.shape, new_positive, new_negative, current_mask=current)
        new = segmenter.segment(image, prompts, refine=refine).mask
        result.far_pixels.append(far_changed_pixels(current, new, stroke.pixels, far_px))
        result.ious.append(iou(new, truth, void))
        current = new
    return result


def run(
    dataset: str, scribbles: str, refine: str, rounds: int, images: Sequence[str] = (), engine: str | None = None
) -> dict[str, object]:
    samples = discover_samples(dataset, scribbles)
    if images:
        wanted = set(images)
        samples = [sample for sample in samples if sample.image_stem in wanted]
        missing = wanted - {sample.image_stem for sample in samples}
        if missing:
            raise ValueError(f"--images: no sample for {', '.join(sorted(missing))}")
    segmenter = Segmenter(create_engine(engine))
    per_sample = [measure_sample(load_sample(sample), segmenter, refine, rounds) for sample in samples]
    return {
        "engine": segmenter.engine.name,
        "refine": refine,
        "rounds": rounds,
        "far_px": FAR_PX,
        "far_pixels_total": sum(sum(sample.far_pixels) for sample in per_sample),
        "samples": {sample.name: {"far_pixels": sample.far_pixels, "ious": sample.ious} for sample in per_sample},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--scribbles", required=True, help="subfolder of first-round scribbles")
    parser.add_argument("--refine", default="maskrefine", choices=("none", "edgerefine", "maskrefine"))
    parser.add_argument("--rounds", type=int, default=3, help="rounds in all, the first included")
    parser.add_argument("--images", nargs="*", default=[], help="image names (default: every image)")
    parser.add_argument("--engine", default=None, help="default: ENGINE")
    parser.add_argument("--json", action="store_true", help="print the whole report as JSON")
    args = parser.parse_args(argv)
    report = run(args.dataset, args.scribbles, args.refine, args.rounds, args.images, args.engine)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        for name, sample in report["samples"].items():  # type: ignore[union-attr]
            ious = [round(value, 3) for value in sample["ious"]]
            print(f"{name}: far pixels per correction {sample['far_pixels']}, IoU {ious}")
        print(
            f"{report['engine']} {report['refine']}, {report['rounds']} rounds: "
            f"{report['far_pixels_total']} pixels changed more than {report['far_px']} px from the new strokes"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
