"""The rearranged mask decoder gives segment-anything's MaskDecoder's answer, on random and trained weights."""

from __future__ import annotations

import copy

import pytest
import torch

from ml_backend.core.engines.sam_decoder import FastMaskDecoder
from ml_backend.core.engines.sam_checkpoints import load_litemedsam
from ml_backend.core.engines.sam_models import build_mobile_sam


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    mobile_sam = build_mobile_sam().eval()
    # Random weights are small; scaled up, every path (softmax saturation
    # included) sees large activations.
    with torch.no_grad():
        for parameter in mobile_sam.mask_decoder.parameters():
            parameter.mul_(3.0)
    return {"mobile_sam_random": mobile_sam, "litemedsam_trained": load_litemedsam().model}


def prompt_sets(image_size: int):
    generator = torch.Generator().manual_seed(1)
    box = torch.tensor([[0.15, 0.2, 0.8, 0.85]]) * image_size
    points = torch.rand(1, 5, 2, generator=generator) * image_size
    labels = torch.tensor([[1, 0, 1, 1, 0]])
    mask = torch.randn(1, 1, 256, 256, generator=generator) * 4
    return {
        "box": dict(points=None, boxes=box, masks=None),
        "points": dict(points=(points, labels), boxes=None, masks=None),
        "one_click": dict(points=(points[:, :1], labels[:, :1]), boxes=None, masks=None),
        "points_box_mask": dict(points=(points, labels), boxes=box, masks=mask),
    }


@pytest.mark.parametrize("model_name", ["mobile_sam_random", "litemedsam_trained"])
@pytest.mark.parametrize("prompt_name", ["box", "points", "one_click", "points_box_mask"])
@pytest.mark.parametrize("multimask", [False, True])
def test_fast_decoder_matches_mask_decoder(models, model_name, prompt_name, multimask):
    model = models[model_name]
    image_size = getattr(model.image_encoder, "img_size", 256)
    # The random model is compared in float64, so that only a wrong formula, not
    # rounding of its large activations, can tell the two decoders apart; the
    # trained one in float32, as it runs.
    dtype = torch.float64 if model_name.endswith("random") else torch.float32
    tolerance = 1e-9 if dtype == torch.float64 else 1e-4
    decoder = copy.deepcopy(model.mask_decoder).to(dtype)
    with torch.inference_mode():
        sparse, dense = model.prompt_encoder(**prompt_sets(image_size)[prompt_name])
        sparse, dense = sparse.to(dtype), dense.to(dtype)
        dense_pe = model.prompt_encoder.get_dense_pe().to(dtype)
        grid = dense_pe.shape[-2:]
        features = torch.randn(1, 256, *grid, generator=torch.Generator().manual_seed(2), dtype=dtype)
        expected_logits, expected_scores = decoder(
            image_embeddings=features,
            image_pe=dense_pe,
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
        )
        best = int(torch.argmax(expected_scores[0]))
        logits, score = FastMaskDecoder(decoder, dense_pe)(features, sparse, dense, multimask)

    expected = expected_logits[:, best : best + 1]
    assert logits.shape == expected.shape == (1, 1, 4 * grid[0], 4 * grid[1])
    scale = float(expected.abs().max())
    assert scale > 0.1
    torch.testing.assert_close(logits, expected, atol=tolerance * scale, rtol=tolerance)
    torch.testing.assert_close(score, expected_scores[:, best : best + 1], atol=tolerance, rtol=tolerance)


def test_fast_decoder_refuses_an_upscaling_it_cannot_rearrange():
    decoder = build_mobile_sam().mask_decoder
    decoder.output_upscaling[0] = torch.nn.ConvTranspose2d(256, 64, kernel_size=3, stride=2)
    with pytest.raises(ValueError, match="2x2 stride-2"):
        FastMaskDecoder(decoder, torch.zeros(1, 256, 64, 64))
