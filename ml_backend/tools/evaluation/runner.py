"""Runs the scribble benchmark: per sample, round 1 from real or robot strokes, then corrections.

Protocol. Round 1 uses the sample's real scribbles when the dataset has them,
otherwise one robot stroke inside the object. Every later round the robot adds
one corrective stroke (see ``robot.py``); strokes accumulate, a new stroke wins
over an older stroke of the other sign where they overlap, and the previous
round's mask is the next round's ``current_mask`` (with the engine's logits as
``previous_logits`` when it returns them). Each round is scored by IoU and
boundary IoU (void left out) and timed (the segment call alone; round 1
includes embedding the image unless the segmenter had it cached). A sample runs
all ``max_interactions`` rounds, as the standard protocol does for mIoU curves,
unless the robot finds nothing left to correct or ``stop_at`` is given and the
IoU reaches it; the remaining rounds then carry the last scores forward, which
is exact for NoS at thresholds up to ``stop_at`` but says nothing about higher ones.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ...core.engine import Embedding, Engine, Prediction
from ...core.prompts import Prompts, make_prompts
from ...errors import ServerError
from . import metrics, robot
from .datasets import LoadedSample, Sample, load_sample

#: What a segmenter gives back each round: a mask and, if it has them, logits for the next round.
SegmentFunction = Callable[[np.ndarray, Prompts], tuple[np.ndarray, "np.ndarray | None"]]

NO_REFINE = "none"


class EngineLoop:
    """Segments with a bare ``Engine``: embeds each image once, decodes every round from it.

    Applies the strokes as hard constraints, the caller's job by the ``Engine``
    contract. Stands in for the application's segmenter when only an engine is given.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._image_key: str | None = None
        self._embedding: Embedding | None = None

    def segment(self, image: np.ndarray, prompts: Prompts, refine: str | None = None) -> Prediction:
        if refine not in (None, NO_REFINE):
            raise ValueError(f"refine: {refine!r} needs the application's segmenter; a bare engine has only 'none'")
        key = hashlib.blake2b(image.tobytes(), digest_size=16).hexdigest() + repr(image.shape)
        if key != self._image_key or self._embedding is None:
            self._embedding = self.engine.embed(image)
            self._image_key = key
        prediction = self.engine.predict(self._embedding, prompts)
        mask = (np.asarray(prediction.mask, bool) | prompts.positive_scribbles) & ~prompts.negative_scribbles
        return Prediction(mask=mask, score=prediction.score, logits=prediction.logits)


def as_segment_function(segmenter: Any, refine: str | None = None) -> SegmentFunction:
    """Accepts an ``Engine``, an object with ``.segment(image, prompts, refine=...)`` or a callable.

    Whatever it returns may be a bool mask or anything with ``.mask`` (and
    optionally ``.logits``), such as a ``Prediction``.
    """
    if isinstance(segmenter, Engine):
        segmenter = EngineLoop(segmenter)
    if hasattr(segmenter, "segment"):
        method = segmenter.segment
        if refine is None:
            call: Callable[[np.ndarray, Prompts], Any] = method
        else:
            def call(image: np.ndarray, prompts: Prompts) -> Any:
                return method(image, prompts, refine=refine)
    elif callable(segmenter):
        if refine not in (None, NO_REFINE):
            raise ValueError(f"refine: {refine!r} needs a segmenter with .segment(); a plain function has only 'none'")
        call = segmenter
    else:
        raise TypeError(f"segmenter: {type(segmenter).__name__} is neither an Engine, nor has .segment, nor is callable")

    def segment(image: np.ndarray, prompts: Prompts) -> tuple[np.ndarray, np.ndarray | None]:
        result = call(image, prompts)
        if hasattr(result, "mask"):
            mask, logits = result.mask, getattr(result, "logits", None)
        else:
            mask, logits = result, None
        mask = np.asarray(mask)
        if mask.shape != prompts.shape:
            raise ValueError(f"segmenter returned a {mask.shape} mask for a {prompts.shape} image")
        return (mask if mask.dtype == bool else mask > 0), logits

    return segment


@dataclass(frozen=True)
class Contender:
    """One row of the results table: an engine with a refine option."""

    label: str
    segment: SegmentFunction
    engine: str = ""
    refine: str = NO_REFINE


@dataclass
class SampleResult:
    """Scores of one sample, padded to ``max_interactions`` rounds; ``seconds`` only for rounds run."""

    name: str
    image: str
    ious: list[float] = field(default_factory=list)
    boundary_ious: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    strokes: list[str] = field(default_factory=list)

    @property
    def rounds_run(self) -> int:
        return len(self.seconds)

    def to_json(self, max_interactions: int) -> dict[str, object]:
        details: dict[str, object] = {
            "name": self.name,
            "image": self.image,
            "rounds_run": self.rounds_run,
            "iou": self.ious,
            "boundary_iou": self.boundary_ious,
            "seconds": self.seconds,
            "strokes": self.strokes,
        }
        for threshold in metrics.NOS_THRESHOLDS:
            strokes, reached = metrics.strokes_to_reach(self.ious, threshold, max_interactions)
            details[metrics.nos_key(threshold)] = strokes
            details[metrics.nos_key(threshold) + "_reached"] = reached
        return details


class NothingToStroke(ServerError, ValueError):
    """The robot cannot start a sample: its object has no pixel outside the void."""


def evaluate_sample(
    loaded: LoadedSample,
    segment: SegmentFunction,
    max_interactions: int = 20,
    stop_at: float | None = None,
    first_dab: bool = False,
) -> SampleResult:
    """Plays the protocol on one sample and returns its per-round scores.

    Round 1 is the sample's scribbles, else the robot's line; with ``first_dab``, one
    positive dab off the object's centre (``robot.first_dab``)."""
    if max_interactions < 1:
        raise ValueError(f"max_interactions: must be at least 1, got {max_interactions}")
    truth, void, image = loaded.ground_truth, loaded.void, loaded.image
    shape = truth.shape
    result = SampleResult(name=loaded.sample.name, image=loaded.sample.image_stem)
    positive = np.zeros(shape, bool)
    negative = np.zeros(shape, bool)
    current_mask: np.ndarray | None = None
    logits: np.ndarray | None = None

    for round_index in range(max_interactions):
        if round_index == 0 and first_dab:
            dab = robot.first_dab(truth, void)
            if dab is None:
                raise NothingToStroke(f"{loaded.sample.name}: the object has no pixel outside the void")
            positive = dab.pixels
            result.strokes.append("dab")
        elif round_index == 0 and loaded.positive_scribbles is not None:
            positive = loaded.positive_scribbles.copy()
            negative = loaded.negative_scribbles.copy() if loaded.negative_scribbles is not None else negative
            result.strokes.append("scribbles")
        else:
            stroke = robot.corrective_stroke(truth, current_mask, void)
            if stroke is None:
                if round_index == 0:
                    raise NothingToStroke(f"{loaded.sample.name}: the object has no pixel outside the void")
                break
            if stroke.positive:
                positive |= stroke.pixels
                negative &= ~stroke.pixels
            else:
                negative |= stroke.pixels
                positive &= ~stroke.pixels
            result.strokes.append("positive" if stroke.positive else "negative")

        prompts = make_prompts(
            image.shape, positive, negative, current_mask=current_mask, previous_logits=logits
        )
        started = time.perf_counter()
        current_mask, logits = segment(image, prompts)
        result.seconds.append(time.perf_counter() - started)
        result.ious.append(metrics.iou(current_mask, truth, void))
        result.boundary_ious.append(metrics.boundary_iou(current_mask, truth, void))
        if stop_at is not None and result.ious[-1] >= stop_at:
            break

    missing = max_interactions - len(result.ious)
    result.ious.extend([result.ious[-1]] * missing)
    result.boundary_ious.extend([result.boundary_ious[-1]] * missing)
    return result


def contenders_from(segmenters: Mapping[str, Any] | Sequence[Contender]) -> list[Contender]:
    """``{"label": engine, object with .segment, or callable}`` or ready ``Contender``s."""
    if isinstance(segmenters, Mapping):
        return [Contender(label, as_segment_function(target), engine=label) for label, target in segmenters.items()]
    return list(segmenters)


def run_benchmark(
    samples: Sequence[Sample],
    segmenters: Mapping[str, Any] | Sequence[Contender],
    max_interactions: int = 20,
    stop_at: float | None = None,
    progress: bool = True,
    description: Mapping[str, object] | None = None,
    first_dab: bool = False,
) -> dict[str, object]:
    """Runs every contender on every sample; returns the report written as JSON.

    ``report["engines"][label]`` holds the summary (``miou_at``, ``nos_85``,
    ``nos_90``, their ``_failures``, ``miou_first``, ``biou_first``,
    ``seconds_per_round_median``, ``count``) and ``samples``, the per-sample details.
    """
    from tqdm import tqdm

    if max_interactions < 1:
        raise ValueError(f"max_interactions: must be at least 1, got {max_interactions}")
    if stop_at is not None and not 0.0 < stop_at <= 1.0:
        raise ValueError(f"stop_at: must be an IoU in (0, 1], got {stop_at}")
    contenders = contenders_from(segmenters)
    if not contenders:
        raise ValueError("segmenters: at least one engine is needed")
    results: dict[str, list[SampleResult]] = {contender.label: [] for contender in contenders}
    skipped: list[dict[str, str]] = []

    bar = tqdm(total=len(samples) * len(contenders), desc="scribble benchmark", unit="run", disable=not progress)
    try:
        for sample in samples:
            loaded = load_sample(sample)
            for contender in contenders:
                try:
                    sample_result = evaluate_sample(loaded, contender.segment, max_interactions, stop_at, first_dab)
                except NothingToStroke as error:
                    skipped.append({"name": sample.name, "engine": contender.label, "reason": str(error)})
                else:
                    results[contender.label].append(sample_result)
                    bar.set_postfix_str(f"{contender.label} {sample.name} IoU@1 {sample_result.ious[0]:.3f}")
                bar.update(1)
    finally:
        bar.close()

    engines: dict[str, object] = {}
    for contender in contenders:
        sample_results = results[contender.label]
        summary = metrics.summarize(
            [result.ious for result in sample_results],
            [result.boundary_ious for result in sample_results],
            [seconds for result in sample_results for seconds in result.seconds],
            max_interactions,
        )
        summary.update(
            engine=contender.engine or contender.label,
            refine=contender.refine,
            samples=[result.to_json(max_interactions) for result in sample_results],
        )
        engines[contender.label] = summary
    report: dict[str, object] = dict(description or {})
    report.update(
        max_interactions=max_interactions, stop_at=stop_at, first_dab=first_dab, skipped=skipped, engines=engines
    )
    return report


def format_table(report: Mapping[str, Any], rounds_shown: Iterable[int] = (1, 5, 10)) -> str:
    """The summary as a fixed-width text table, one line per engine."""
    max_interactions = int(report["max_interactions"])
    shown = [round_number for round_number in rounds_shown if round_number < max_interactions] + [max_interactions]
    headers = ["engine", "n"] + [f"mIoU@{round_number}" for round_number in shown]
    headers += ["NoS@85", "fail", "NoS@90", "fail", "bIoU@1", "s/round"]
    rows = [headers]

    def figure(value: object, digits: int = 3) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    for label, summary in report["engines"].items():
        miou_at = summary["miou_at"]
        row = [label, str(summary["count"])]
        row += [figure(miou_at[round_number - 1]) if miou_at else "-" for round_number in shown]
        row += [
            figure(summary["nos_85"], 2),
            str(summary["nos_85_failures"]),
            figure(summary["nos_90"], 2),
            str(summary["nos_90_failures"]),
            figure(summary["biou_first"]),
            figure(summary["seconds_per_round_median"]),
        ]
        rows.append(row)
    widths = [max(len(row[column]) for row in rows) for column in range(len(headers))]
    lines = [
        "  ".join(cell.ljust(widths[column]) if column == 0 else cell.rjust(widths[column]) for column, cell in enumerate(row))
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)
