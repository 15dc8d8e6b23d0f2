"""The one latency percentile every report uses, on samples with known answers."""

import pytest

from ml_backend.tools.bench import Timing
from ml_backend.tools.latency import percentile


def test_p95_of_twenty_is_the_nineteenth_smallest() -> None:
    samples = [float(value) for value in range(20, 0, -1)]
    assert percentile(samples, 0.95) == 19.0
    assert percentile(samples, 0.5) == 10.0
    assert percentile(samples, 1.0) == 20.0


def test_p95_of_few_samples_is_a_measured_one() -> None:
    # 15 HTTP rounds, as the bench times them: rank ceil(14.25) = 15, the slowest.
    samples = [100.0 + value for value in range(15)]
    assert percentile(samples, 0.95) == 114.0
    assert percentile([7.5], 0.95) == 7.5


def test_bench_timing_uses_it() -> None:
    timing = Timing([5.0, 1.0, 3.0, 2.0, 4.0] * 4)
    assert timing.p95 == percentile(timing.samples_ms, 0.95) == 5.0
    assert timing.p50 == 3.0


@pytest.mark.parametrize("share", [0.0, -0.1, 1.5])
def test_share_out_of_range_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="share"):
        percentile([1.0, 2.0], share)


def test_no_samples_is_refused() -> None:
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 0.95)
