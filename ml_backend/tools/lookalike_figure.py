"""``python -m ml_backend.tools.lookalike_figure [DATASET] [OUT.png] [CASE...]``: the look-alike picture.

Renders a few COCO128-instances cases (target outline, strokes, the default
engine's mask, plain GrabCut's mask) with ``evaluation.lookalike_figure``; with no
arguments, the cases and path the README shows (docs/images/lookalikes.png).
"""

from __future__ import annotations

import sys

from .evaluation.lookalike_figure import main as render

DEFAULT_DATASET = "../shared/datasets/COCO128-instances"
DEFAULT_OUT = "docs/images/lookalikes.png"
DEFAULT_CASES = ("000000000196_28", "000000000584_10", "000000000312_03", "000000000196_14")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    dataset = args[0] if args else DEFAULT_DATASET
    out = args[1] if len(args) > 1 else DEFAULT_OUT
    cases = args[2:] or list(DEFAULT_CASES)
    return render([dataset, out, *cases])


if __name__ == "__main__":
    raise SystemExit(main())
