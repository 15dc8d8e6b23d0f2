"""Mask helpers shared by the GrabCut engine and the refinement."""

from __future__ import annotations

import numpy as np

from ml_backend.core.regions import is_dab, padded_box, shrink_any


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


def test_a_blob_is_a_dab_a_line_or_blobs_apart_are_not():
    strokes = np.zeros((100, 100), bool)
    assert not is_dab(strokes)
    strokes[40:56, 40:56] = True  # 16 px square: 23 px across, 16 thick
    assert is_dab(strokes)
    strokes[0:16, 0:16] = True  # a second blob far away: together they span the image
    assert not is_dab(strokes)
    corner = np.zeros_like(strokes)
    corner[0:16, 0:16] = True
    assert is_dab(corner)  # the frame bounds a dab that touches it
    line = np.zeros_like(strokes)
    line[48:52, 10:90] = True  # 80 px long, 4 thick
    assert not is_dab(line)
