"""The figures of a soak run: latency by round, errors, IoU, the server's memory."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field

import numpy as np

from ..latency import percentile
from .config import SoakConfig


@dataclass
class Outcome:
    """One ``/predict`` as an annotator saw it."""

    round_index: int  # 0: the task is opened; 1..K: clicks
    seconds: float
    ok: bool
    error: str | None = None
    iou: float | None = None


@dataclass
class SoakReport:
    config: dict
    server: dict
    requests: int = 0
    errors: int = 0
    error_examples: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    requests_per_s: float = 0.0
    latency_ms: dict = field(default_factory=dict)
    mean_iou: float | None = None
    rss: dict = field(default_factory=dict)
    label_studio_image_requests: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def _latency(samples: list[float]) -> dict:
    return {
        "n": len(samples),
        "p50": round(1000 * statistics.median(samples), 1),
        "p95": round(1000 * percentile(samples, 0.95), 1),
        "max": round(1000 * max(samples), 1),
    }


def build_report(config: SoakConfig, server: dict, outcomes: list[Outcome], elapsed_s: float, rss: dict,
                 image_requests: int) -> SoakReport:
    report = SoakReport(config=asdict(config), server=server)
    report.requests = len(outcomes)
    failures = [outcome for outcome in outcomes if not outcome.ok]
    report.errors = len(failures)
    report.error_examples = list(dict.fromkeys(outcome.error or "" for outcome in failures))[:5]
    report.elapsed_s = round(elapsed_s, 2)
    report.requests_per_s = round(len(outcomes) / elapsed_s, 2) if elapsed_s else 0.0
    by_round: dict[str, list[float]] = {}
    for outcome in outcomes:
        name = "open" if outcome.round_index == 0 else f"round_{outcome.round_index}"
        by_round.setdefault(name, []).append(outcome.seconds)
    clicks = [outcome.seconds for outcome in outcomes if outcome.round_index > 0]
    if clicks:
        by_round["all_rounds"] = clicks
    report.latency_ms = {name: _latency(samples) for name, samples in by_round.items()}
    ious = [outcome.iou for outcome in outcomes if outcome.iou is not None]
    report.mean_iou = round(float(np.mean(ious)), 4) if ious else None
    report.rss = rss
    report.label_studio_image_requests = image_requests
    return report


def format_report(report: SoakReport) -> str:
    lines = [
        f"soak: {report.config['annotators']} annotators x {report.config['rounds']} rounds"
        + (f", {report.config['duration_s']:g} s" if report.config["duration_s"] else "")
        + f", {report.config['image_width']}x{report.config['image_height']} images, server {report.server}",
        f"requests {report.requests}, errors {report.errors}, {report.elapsed_s} s, {report.requests_per_s} req/s"
        + (f", mean IoU {report.mean_iou}" if report.mean_iou is not None else ""),
        f"{'round':<12} {'n':>6} {'p50 ms':>9} {'p95 ms':>9} {'max ms':>9}",
    ]
    for name, figures in report.latency_ms.items():
        lines.append(f"{name:<12} {figures['n']:>6} {figures['p50']:>9} {figures['p95']:>9} {figures['max']:>9}")
    rss = report.rss
    lines.append(
        f"server RSS over {rss['processes']} processes: start {rss['start_mb']} MB, "
        f"peak {rss['peak_mb']} MB, end {rss['end_mb']} MB ({rss['samples']} samples)"
    )
    lines += [f"error: {example}" for example in report.error_examples]
    return "\n".join(lines)
