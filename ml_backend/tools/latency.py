"""One definition of a latency percentile for every report (bench, soak, fault tests).

Nearest rank: the p95 of 20 samples is the 19th smallest, one that was actually
measured, never an interpolation between two.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(samples: Sequence[float], share: float) -> float:
    if not samples:
        raise ValueError("percentile: no samples")
    if not 0.0 < share <= 1.0:
        raise ValueError(f"percentile: share must be in (0, 1], got {share}")
    ordered = sorted(samples)
    return float(ordered[max(0, math.ceil(share * len(ordered)) - 1)])
