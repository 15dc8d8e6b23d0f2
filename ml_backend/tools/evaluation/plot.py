"""mIoU against the number of strokes, one curve per engine, saved as an image."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping


def plot_miou_curves(report: Mapping[str, Any], output_path: str | Path, title: str | None = None) -> Path:
    """Draws ``report["engines"][label]["miou_at"]`` for every engine and saves it (PNG, SVG, PDF)."""
    # The Agg canvas renders off-screen without touching pyplot's global backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(7, 4.5), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    for label, summary in report["engines"].items():
        miou_at = summary.get("miou_at") or []
        if miou_at:
            axes.plot(range(1, len(miou_at) + 1), miou_at, marker="o", markersize=3, label=f"{label} (n={summary['count']})")
    for threshold in (0.85, 0.90):
        axes.axhline(threshold, color="grey", linewidth=0.6, linestyle=":")
    axes.set_xlabel("strokes (round 1 = first strokes)")
    axes.set_ylabel("mean IoU")
    axes.set_xlim(left=1)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(True, linewidth=0.3)
    axes.legend(loc="lower right")
    if title:
        axes.set_title(title)
    figure.tight_layout()
    path = Path(output_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path
