"""A correction round changes nothing far from its new strokes; an empty mask is no mask."""

from __future__ import annotations

import numpy as np
import pytest

from ml_backend.core.engines.geodesic_grabcut import GeodesicGrabCutEngine
from ml_backend.core.prompts import make_prompts
from ml_backend.core.refine import correction_reach, refine_mask
from ml_backend.core.segmenter import Segmenter
from ml_backend.tools.evaluation.correction_reach import FAR_PX, far_changed_pixels, run
from tests.support.data import shared_dataset
from tests.synthetic import disc_scene, scribbles_for



def test_far_changed_pixels_counts_only_changes_beyond_the_distance() -> None:
    previous = np.zeros((200, 200), bool)
    new = previous.copy()
    new[10:12, 10:20] = True  # 20 pixels near the stroke's corner, 180 px away from its far end
    new[150:152, 150:160] = True  # 20 pixels next to the stroke
    stroke = np.zeros_like(previous)
    stroke[140:145, 140:170] = True
    assert far_changed_pixels(previous, new, stroke) == 20
    assert far_changed_pixels(previous, new, stroke, far_px=500) == 0
    assert far_changed_pixels(previous, previous, stroke) == 0


@pytest.mark.parametrize("refine", ["edgerefine", "maskrefine"])
def test_refinement_keeps_the_unrefined_mask_outside_a_corrections_reach(refine: str) -> None:
    image, truth = disc_scene(320, 400)
    positive, negative = scribbles_for(truth)
    segmenter = Segmenter(GeodesicGrabCutEngine())
    first = segmenter.segment(image, make_prompts(image.shape, positive, negative), refine=refine).mask
    stroke = np.zeros_like(first)
    height, width = first.shape
    stroke[height // 2 - 2 : height // 2 + 2, width // 2 - 6 : width // 2 + 6] = True
    prompts = make_prompts(image.shape, stroke, None, current_mask=first)
    reach = correction_reach(prompts)
    assert reach is not None and reach.any() and not reach.all()
    # A jagged unrefined mask: refinement would smooth it everywhere, but may only do so within reach.
    unrefined = first.copy()
    unrefined[::3, ::3] ^= True
    unrefined |= stroke
    refined = refine_mask(image, unrefined, prompts, refine)
    assert np.array_equal(refined[~reach], unrefined[~reach])
    assert not np.array_equal(refined[reach], unrefined[reach])
    # A first round has no reach: refinement works on the whole mask.
    assert correction_reach(make_prompts(image.shape, positive, negative)) is None


def test_an_empty_current_mask_is_no_mask() -> None:
    image, truth = disc_scene(320, 400)
    positive, negative = scribbles_for(truth)
    empty = np.zeros(truth.shape, np.uint8)
    assert make_prompts(image.shape, positive, negative, current_mask=empty).current_mask is None
    segmenter = Segmenter(GeodesicGrabCutEngine())
    without = segmenter.segment(image, make_prompts(image.shape, positive, negative)).mask
    with_empty = segmenter.segment(
        image, make_prompts(image.shape, positive, negative, current_mask=empty)
    ).mask
    assert np.array_equal(without, with_empty)


@pytest.mark.parametrize("refine", ["edgerefine", "maskrefine"])
def test_robot_corrections_on_grabcut_change_nothing_far_from_their_strokes(refine: str) -> None:
    # llama and person1: where refining the whole boundary again moved it by
    # hundreds of pixels far from a small corrective stroke.
    report = run(str(shared_dataset("GrabCut")), "scribbles_set2", refine, rounds=3, images=["llama", "person1"])
    assert report["far_px"] == FAR_PX
    for name, sample in report["samples"].items():  # type: ignore[union-attr]
        assert len(sample["far_pixels"]) == 2, name
        assert sample["far_pixels"] == [0, 0], name
        assert sample["ious"][-1] >= 0.9, name
