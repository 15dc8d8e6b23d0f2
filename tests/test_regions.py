"""Mask helpers shared by the GrabCut engine and the refinement."""

from __future__ import annotations

import numpy as np

from ml_backend.core.regions import padded_box, shrink_any


def test_a_one_pixel_stroke_survives_a_threefold_reduction():
    stroke = np.zeros((90, 120), bool)
    stroke[44, 10:110] = True  # one pixel of every 3x3 block it crosses
    small = shrink_any(stroke, (30, 40))
    assert small[14, 4:36].all()
    assert small.sum() == small[14].sum()


def test_padded_box_grows_and_clips():
    region = np.zeros((50, 60), bool)
    assert padded_box(region, 3) is None
    region[10:20, 2:5] = True
    rows, cols = padded_box(region, 4)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (6, 24, 0, 9)
