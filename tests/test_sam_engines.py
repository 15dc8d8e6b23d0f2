"""SAM, MobileSAM and LiteMedSAM engines end to end.

SAM and MobileSAM run with random weights (their checkpoints are not shipped):
those tests check the plumbing (shapes, caching, the encoder not rerun, weights
loading). LiteMedSAM runs with its real weights, so it is also held to accuracy.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ml_backend.core.engine import Embedding, EngineUnavailable
from ml_backend.core.engines.sam_checkpoints import (
    litemedsam_checkpoint_path,
    load_litemedsam,
    load_mobile_sam,
    load_sam,
)
from ml_backend.core.engines.sam_family import LiteMedSamEngine, MobileSamEngine, SamEngine
from ml_backend.core.engines.sam_models import build_mobile_sam, build_sam
from ml_backend.core.prompts import make_prompts
from tests.support.data import shared_dataset
from tests.synthetic import iou

HEIGHT, WIDTH = 240, 320
DISC_CENTRE, DISC_RADIUS = (150, 130), 60  # (x, y)


def disc_scene() -> tuple[np.ndarray, np.ndarray]:
    """A bright disc on a striped, noisy background, and the disc's mask."""
    rng = np.random.default_rng(7)
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    background = 70 + 25 * np.sin(xs / 6.0) * np.cos(ys / 9.0) + rng.normal(0, 8, (HEIGHT, WIDTH))
    disc = (xs - DISC_CENTRE[0]) ** 2 + (ys - DISC_CENTRE[1]) ** 2 <= DISC_RADIUS**2
    gray = np.where(disc, 200 + rng.normal(0, 8, (HEIGHT, WIDTH)), background)
    image = np.stack([gray, gray * 0.9, gray * 0.8], axis=2).clip(0, 255).astype(np.uint8)
    return image, disc


def disc_strokes() -> tuple[np.ndarray, np.ndarray]:
    positive = np.zeros((HEIGHT, WIDTH), np.uint8)
    negative = np.zeros((HEIGHT, WIDTH), np.uint8)
    x, y = DISC_CENTRE
    # A cross over three quarters of the disc, as people scribble across an object.
    reach = int(0.75 * DISC_RADIUS)
    cv2.line(positive, (x - reach, y - reach // 3), (x + reach, y + reach // 3), 1, 5)
    cv2.line(positive, (x - reach // 3, y - reach), (x + reach // 3, y + reach), 1, 5)
    cv2.line(negative, (x + DISC_RADIUS + 20, y - 50), (x + DISC_RADIUS + 20, y + 50), 1, 5)
    return positive.astype(bool), negative.astype(bool)


def disc_box() -> list[float]:
    x, y = DISC_CENTRE
    return [x - DISC_RADIUS, y - DISC_RADIUS, x + DISC_RADIUS + 1, y + DISC_RADIUS + 1]


class EncoderCalls:
    """Counts forward calls of an engine's image encoder."""

    def __init__(self, engine) -> None:
        self.count = 0
        self.handle = engine.model.image_encoder.register_forward_hook(self._hook)

    def _hook(self, *_: object) -> None:
        self.count += 1

    def __enter__(self) -> "EncoderCalls":
        return self

    def __exit__(self, *_: object) -> None:
        self.handle.remove()


@pytest.fixture(scope="module")
def scene():
    return disc_scene()


@pytest.fixture(scope="module")
def litemedsam():
    return load_litemedsam()


@pytest.fixture(scope="module")
def sam_vit_b():
    torch.manual_seed(0)
    return SamEngine(build_sam("vit_b"), model_type="vit_b")


@pytest.fixture(scope="module")
def mobile_sam_model():
    torch.manual_seed(0)
    return build_mobile_sam()


@pytest.fixture(scope="module")
def mobile_sam(mobile_sam_model):
    return MobileSamEngine(mobile_sam_model)


@pytest.fixture(scope="module")
def embeddings(scene):
    """Each engine's embedding of the scene, made once per module (ViT-B's takes tens of seconds on a CPU)."""
    made = {}

    def embedding_of(engine):
        if engine.identity not in made:
            made[engine.identity] = engine.embed(scene[0])
        return made[engine.identity]

    return embedding_of


@pytest.fixture(scope="module")
def litemedsam_embedding(litemedsam, embeddings):
    return embeddings(litemedsam)


@pytest.fixture(scope="module")
def mobile_sam_embedding(mobile_sam, embeddings):
    return embeddings(mobile_sam)


@pytest.fixture(scope="module")
def mobile_sam_checkpoint(mobile_sam_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "mobile_sam.pt"
    torch.save(mobile_sam_model.state_dict(), path)
    return path


ENGINES = ["sam_vit_b", "mobile_sam", "litemedsam"]


# -- every engine -------------------------------------------------------------


@pytest.mark.parametrize("engine_name", ENGINES)
def test_embed_then_predict_gives_a_mask_at_image_size_without_rerunning_the_encoder(
    engine_name, embeddings, request, scene
):
    engine = request.getfixturevalue(engine_name)
    embedding = embeddings(engine)
    image, _ = scene
    assert embedding.engine_identity == engine.identity
    assert embedding.image_shape == (HEIGHT, WIDTH)
    features = embedding.arrays["features"]
    assert features.dtype == np.float32 and features.shape == (1, 256, 64, 64)
    side = engine.input_spec.size
    assert tuple(embedding.arrays["input_size"]) == (round(HEIGHT * side / WIDTH), side)

    positive, negative = disc_strokes()
    prompts = make_prompts(image.shape, positive_scribbles=positive, negative_scribbles=negative)
    with EncoderCalls(engine) as calls:
        first = engine.predict(embedding, prompts)
        again = engine.predict(embedding, prompts.replace(previous_logits=first.logits))
    assert calls.count == 0
    assert first.mask.shape == (HEIGHT, WIDTH) and first.mask.dtype == bool
    assert np.isfinite(first.score)
    assert first.logits.shape == (1, 256, 256) and first.logits.dtype == np.float32
    if engine.prompt_options.get("use_mask_input", True):
        # Feeding the logits back changes the decoder's input, so its output.
        assert not np.allclose(first.logits, again.logits)
    else:
        np.testing.assert_array_equal(first.logits, again.logits)


@pytest.mark.parametrize("engine_name", ENGINES)
def test_prompts_steer_the_decoder(engine_name, embeddings, request, scene):
    engine = request.getfixturevalue(engine_name)
    embedding = embeddings(engine)
    image, _ = scene
    left = engine.predict(embedding, make_prompts(image.shape, points=[[40, 40]]))
    right = engine.predict(embedding, make_prompts(image.shape, points=[[280, 200]]))
    assert not np.allclose(left.logits, right.logits)


@pytest.mark.parametrize("engine_name", ENGINES)
def test_negative_marks_alone_give_an_empty_mask(engine_name, embeddings, request, scene):
    engine = request.getfixturevalue(engine_name)
    embedding = embeddings(engine)
    _, negative = disc_strokes()
    prediction = engine.predict(embedding, make_prompts(scene[0].shape, negative_scribbles=negative))
    assert not prediction.mask.any() and prediction.score == 0.0


def test_identities_differ_between_models_and_embeddings_do_not_cross(
    sam_vit_b, mobile_sam, litemedsam, mobile_sam_model, litemedsam_embedding, scene
):
    identities = {sam_vit_b.identity, mobile_sam.identity, litemedsam.identity}
    assert len(identities) == 3
    assert "vit_b" in sam_vit_b.identity and "vit_t" in mobile_sam.identity
    # Random weights are nobody else's: a second engine on them is not "the same model".
    assert MobileSamEngine(mobile_sam_model).identity != mobile_sam.identity
    # Real weights are named by their content, so every process agrees.
    assert load_litemedsam().identity == litemedsam.identity
    with pytest.raises(ValueError, match="embedding was made by"):
        mobile_sam.predict(litemedsam_embedding, make_prompts(scene[0].shape, points=[[10, 10]]))


def test_prompts_for_another_image_size_are_refused(litemedsam, litemedsam_embedding):
    with pytest.raises(ValueError, match="prompts are"):
        litemedsam.predict(litemedsam_embedding, make_prompts((100, 100), points=[[10, 10]]))


# -- LiteMedSAM: real weights ---------------------------------------------------


def test_litemedsam_segments_the_disc_from_its_box(litemedsam, litemedsam_embedding, scene):
    image, disc = scene
    prediction = litemedsam.predict(litemedsam_embedding, make_prompts(image.shape, box=disc_box()))
    assert iou(prediction.mask, disc) >= 0.9  # measured 0.99


def test_litemedsam_segments_the_disc_from_strokes(litemedsam, litemedsam_embedding, scene):
    image, disc = scene
    positive, negative = disc_strokes()
    prediction = litemedsam.predict(
        litemedsam_embedding, make_prompts(image.shape, positive_scribbles=positive, negative_scribbles=negative)
    )
    assert iou(prediction.mask, disc) >= 0.85
    # A second round with the mask and logits of the first keeps it.
    second = litemedsam.predict(
        litemedsam_embedding,
        make_prompts(
            image.shape,
            positive_scribbles=positive,
            negative_scribbles=negative,
            current_mask=prediction.mask,
            previous_logits=prediction.logits,
        ),
    )
    assert iou(second.mask, disc) >= 0.85


@pytest.mark.parametrize("float16", [False, True])
def test_embedding_bytes_round_trip_gives_the_same_mask(litemedsam, litemedsam_embedding, scene, float16):
    image, _ = scene
    prompts = make_prompts(image.shape, box=disc_box())
    restored = Embedding.from_bytes(litemedsam_embedding.to_bytes(float16=float16))
    assert restored.arrays["features"].dtype == np.float32
    before = litemedsam.predict(litemedsam_embedding, prompts)
    after = litemedsam.predict(restored, prompts)
    assert iou(before.mask, after.mask) >= 0.99


def test_concurrent_predictions_match_sequential_ones(litemedsam, litemedsam_embedding, scene):
    image, _ = scene
    prompt_sets = [
        make_prompts(image.shape, box=disc_box()),
        make_prompts(image.shape, positive_scribbles=disc_strokes()[0]),
        make_prompts(image.shape, box=[10, 10, 120, 100]),
        make_prompts(image.shape, box=[150, 60, 300, 230]),
    ]
    sequential = [litemedsam.predict(litemedsam_embedding, prompts).logits for prompts in prompt_sets]
    concurrent: dict[int, np.ndarray] = {}

    def work(index: int) -> None:
        for _ in range(2):
            concurrent[index] = litemedsam.predict(litemedsam_embedding, prompt_sets[index]).logits

    threads = [threading.Thread(target=work, args=(index,)) for index in range(len(prompt_sets))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, expected in enumerate(sequential):
        np.testing.assert_allclose(concurrent[index], expected, atol=1e-4)


def medscribble_cases(medscribble: Path) -> list[str]:
    names = json.loads((medscribble / "manifest.json").read_text())
    # One image of each data set where a single object fits a box.
    wanted = ("ACDC", "BTCV", "CAMUS", "CHAOS")
    return [next(name for name in names if name.startswith(prefix + "__")) for prefix in wanted]


def test_litemedsam_on_medscribble_with_annotator_strokes(litemedsam):
    medscribble = shared_dataset("MedScribble")
    ious, all_ones_ious = [], []
    for name in medscribble_cases(medscribble):
        gray = cv2.imread(str(medscribble / "images" / f"{name}.png"), cv2.IMREAD_GRAYSCALE)
        truth = cv2.imread(str(medscribble / "masks" / f"{name}.png"), cv2.IMREAD_GRAYSCALE) > 127
        strokes = cv2.imread(str(medscribble / "scribbles" / f"{name}__ann0.png"), cv2.IMREAD_GRAYSCALE)
        image = np.repeat(gray[:, :, None], 3, axis=2)
        prompts = make_prompts(image.shape, positive_scribbles=strokes == 255, negative_scribbles=strokes == 128)
        prediction = litemedsam.predict(litemedsam.embed(image), prompts)
        ious.append(iou(prediction.mask, truth))
        all_ones_ious.append(iou(np.ones_like(truth), truth))
    print(f"LiteMedSAM MedScribble ann0 IoU: mean {np.mean(ious):.3f}, per image {np.round(ious, 3).tolist()}")
    assert np.mean(ious) >= 0.7  # measured 0.88
    assert np.mean(ious) >= np.mean(all_ones_ious) + 0.3


# -- MobileSAM: architecture and weights -----------------------------------------


def test_mobile_sam_state_dict_has_the_official_layout(mobile_sam_model):
    state = mobile_sam_model.state_dict()
    assert {key.split(".")[0] for key in state} == {"image_encoder", "prompt_encoder", "mask_decoder"}
    expected_shapes = {
        "image_encoder.patch_embed.seq.0.c.weight": (32, 3, 3, 3),
        "image_encoder.patch_embed.seq.2.c.weight": (64, 32, 3, 3),
        "image_encoder.layers.0.blocks.0.conv1.c.weight": (256, 64, 1, 1),
        "image_encoder.layers.1.blocks.0.attn.attention_biases": (4, 49),
        "image_encoder.layers.2.blocks.5.attn.attention_biases": (5, 196),
        "image_encoder.layers.3.blocks.1.mlp.fc1.weight": (1280, 320),
        "image_encoder.norm_head.weight": (320,),
        "image_encoder.head.weight": (1000, 320),
        "image_encoder.neck.0.weight": (256, 320, 1, 1),
        "prompt_encoder.point_embeddings.0.weight": (1, 256),
        "mask_decoder.iou_prediction_head.layers.2.weight": (4, 256),
    }
    for key, shape in expected_shapes.items():
        assert tuple(state[key].shape) == shape, key


def test_mobile_sam_encoder_matches_the_tinyvit_of_a_real_checkpoint(mobile_sam_model):
    """LiteMedSAM's shipped weights come from the same TinyViT-5M, but with a stride-1
    stem and without the classifier head: every other tensor must line up."""
    shipped = torch.load(litemedsam_checkpoint_path(), map_location="cpu", weights_only=True)
    ours = mobile_sam_model.state_dict()
    shipped_shapes = {key: tuple(value.shape) for key, value in shipped.items() if ".patch_embed." not in key}
    our_shapes = {
        key: tuple(value.shape)
        for key, value in ours.items()
        if ".patch_embed." not in key and not key.startswith(("image_encoder.norm_head.", "image_encoder.head."))
    }
    assert our_shapes == shipped_shapes
    stem = {key for key in ours if ".patch_embed." in key}
    assert stem == {key for key in shipped if ".patch_embed." in key}


def test_mobile_sam_loads_its_checkpoint_and_reproduces_the_model(
    mobile_sam_checkpoint, mobile_sam, mobile_sam_embedding, scene
):
    image, _ = scene
    loaded = load_mobile_sam(mobile_sam_checkpoint)
    assert loaded.identity != mobile_sam.identity
    assert load_mobile_sam(mobile_sam_checkpoint).identity == loaded.identity
    embedding = loaded.embed(image)
    np.testing.assert_allclose(embedding.arrays["features"], mobile_sam_embedding.arrays["features"], atol=1e-5)
    prompts = make_prompts(image.shape, positive_scribbles=disc_strokes()[0])
    np.testing.assert_allclose(
        loaded.predict(embedding, prompts).logits,
        mobile_sam.predict(mobile_sam_embedding, prompts).logits,
        atol=1e-4,
    )


@pytest.mark.parametrize("float16", [False, True])
def test_mobile_sam_embedding_round_trip(mobile_sam, mobile_sam_embedding, scene, float16):
    prompts = make_prompts(scene[0].shape, box=disc_box())
    restored = Embedding.from_bytes(mobile_sam_embedding.to_bytes(float16=float16))
    before = mobile_sam.predict(mobile_sam_embedding, prompts)
    after = mobile_sam.predict(restored, prompts)
    assert iou(before.mask, after.mask) >= 0.99


# -- loading errors ---------------------------------------------------------------


def test_missing_checkpoints_name_the_setting_the_path_and_the_fix(tmp_path):
    missing = tmp_path / "sam_vit_b_01ec64.pth"
    with pytest.raises(EngineUnavailable) as sam_error:
        load_sam("vit_b", missing)
    message = str(sam_error.value)
    assert "SAM_CHECKPOINT" in message and str(missing) in message
    assert "scribble-seg download vit_b" in message and "sam_vit_b_01ec64.pth" in message
    with pytest.raises(EngineUnavailable) as mobile_error:
        load_mobile_sam(tmp_path / "mobile_sam.pt")
    message = str(mobile_error.value)
    assert "MOBILE_SAM_CHECKPOINT" in message and "scribble-seg download mobile_sam" in message
    with pytest.raises(EngineUnavailable, match="vit_b, vit_l, vit_h"):
        load_sam("vit_x", missing)


def test_a_checkpoint_of_another_model_is_refused_by_name(mobile_sam_checkpoint, tmp_path):
    with pytest.raises(EngineUnavailable, match="SAM_CHECKPOINT: .* is not a SAM vit_b checkpoint"):
        load_sam("vit_b", mobile_sam_checkpoint)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(EngineUnavailable, match="MOBILE_SAM_CHECKPOINT: .* not a readable torch checkpoint"):
        load_mobile_sam(garbage)


def test_engines_refuse_modules_that_are_not_sam_models():
    with pytest.raises(TypeError, match="image_encoder"):
        LiteMedSamEngine(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="model_type"):
        SamEngine(build_mobile_sam(), model_type="vit_t")
