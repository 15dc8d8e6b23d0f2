import io
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from ml_backend.cli import build_parser, main
from ml_backend.core.refine import boundary_band

from .support.data import shared_dataset
from .synthetic import disc_scene, iou, scribbles_for

SCRIPT = Path(sys.executable).with_name("scribble-seg")
ROOT = Path(__file__).resolve().parents[1]


def _save(path: Path, array: np.ndarray) -> str:
    Image.fromarray(array).save(path)
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    image, mask = disc_scene(120, 150)
    positive, negative = scribbles_for(mask)
    return {
        "folder": folder,
        "mask": mask,
        "image": _save(folder / "image.png", image),
        "positive": _save(folder / "positive.png", positive.astype(np.uint8) * 255),
        "negative": _save(folder / "negative.png", negative.astype(np.uint8) * 255),
        "integrated": _save(
            folder / "integrated.png",
            np.dstack([np.zeros_like(mask), positive, negative]).astype(np.uint8) * 255,
        ),
    }


@pytest.mark.parametrize(
    "form, image_format, mode, channels",
    [("rgb_alpha", "PNG", "RGBA", 4), ("only_alpha", "PNG", "L", 1), ("white_background", "JPG", "RGB", 3)],
)
def test_segment_writes_each_return_form(files, form, image_format, mode, channels, capsys):
    output = files["folder"] / f"out-{form}.{image_format.lower()}"
    code = main(
        [
            "segment", files["image"], "--positive", files["positive"], "--negative", files["negative"],
            "--return-form", form, "--format", image_format, "-o", str(output),
        ]
    )
    assert code == 0
    assert str(output) in capsys.readouterr().out
    data = output.read_bytes()
    # The file's own signature, not its name: PNG's 8 bytes, or JPEG's start-of-image marker.
    assert data.startswith(b"\x89PNG\r\n\x1a\n" if image_format == "PNG" else b"\xff\xd8\xff")
    result = Image.open(io.BytesIO(data))
    assert result.format == ("PNG" if image_format == "PNG" else "JPEG")
    assert result.mode == mode and result.size == (150, 120)
    array = np.asarray(result)
    assert (array.shape[2] if array.ndim == 3 else 1) == channels
    if form == "white_background":
        # Against the source image, away from the feathered edge: the object's own
        # pixels inside, white outside (up to JPEG's error).
        source = np.asarray(Image.open(files["image"])).astype(int)
        inside = cv2.erode(files["mask"].astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
        outside = cv2.dilate(files["mask"].astype(np.uint8), np.ones((9, 9), np.uint8)) == 0
        assert np.abs(array[inside].astype(int) - source[inside]).mean() < 12
        assert np.abs(array[outside].astype(int) - 255).mean() < 6
    else:
        alpha = array[:, :, 3] if form == "rgb_alpha" else array
        assert alpha.min() == 0 and alpha.max() == 255
        # feathering on by default: some soft pixels, only near the boundary
        soft = (alpha > 0) & (alpha < 255)
        assert soft.any() and not (soft & ~boundary_band(alpha > 127, 3)).any()
        assert iou(alpha > 127, files["mask"]) > 0.9


def test_no_feathering_gives_a_hard_alpha(files):
    output = files["folder"] / "hard.png"
    code = main(
        ["segment", files["image"], "--integrated", files["integrated"], "--no-feathering",
         "--return-form", "only_alpha", "-o", str(output)]
    )
    assert code == 0
    alpha = np.asarray(Image.open(output))
    assert set(np.unique(alpha).tolist()) == {0, 255}
    assert iou(alpha > 127, files["mask"]) > 0.9


def test_errors_name_the_input_and_the_limit(files, tmp_path, capsys):
    assert main(["segment", files["image"], "--positive", files["positive"], "--format", "JPG", "-o", str(tmp_path / "x.jpg")]) == 2
    assert "JPG cannot carry alpha" in capsys.readouterr().err

    small = _save(tmp_path / "small.png", np.zeros((20, 40, 3), np.uint8))
    assert main(["segment", small, "--positive", files["positive"], "-o", str(tmp_path / "x.png")]) == 2
    error = capsys.readouterr().err
    assert "IMAGE" in error and "32" in error

    wrong_size = _save(tmp_path / "wrong.png", np.zeros((60, 60), np.uint8))
    assert main(["segment", files["image"], "--positive", wrong_size, "-o", str(tmp_path / "x.png")]) == 2
    assert "--positive" in capsys.readouterr().err

    empty = _save(tmp_path / "empty.png", np.zeros((120, 150), np.uint8))
    assert main(["segment", files["image"], "--positive", empty, "-o", str(tmp_path / "x.png")]) == 2
    assert "positive stroke" in capsys.readouterr().err

    assert main(["segment", str(tmp_path / "missing.png"), "--positive", empty, "-o", str(tmp_path / "x.png")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_engines_lists_every_engine_and_its_weights(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("MODEL_DIR", str(tmp_path))
    from ml_backend.settings import get_settings

    get_settings.cache_clear()
    try:
        assert main(["engines"]) == 0
    finally:
        get_settings.cache_clear()
    lines = capsys.readouterr().out.splitlines()
    by_name = {line.split()[0]: line for line in lines}
    assert set(by_name) >= {"geodesic_grabcut", "grabcut", "sam", "mobile_sam", "litemedsam"}
    assert "(default)" in by_name["geodesic_grabcut"]
    assert "ready" in by_name["grabcut"] and "ready" in by_name["litemedsam"]
    assert "missing" in by_name["sam"] and "SAM_CHECKPOINT" in by_name["sam"]
    assert by_name["sam"].endswith("needs: scribble-seg download vit_b")
    assert by_name["mobile_sam"].endswith("needs: scribble-seg download mobile_sam")
    assert str(tmp_path) in by_name["mobile_sam"]


def test_a_new_user_cuts_out_grabcut_images_from_the_console_script(tmp_path):
    """As in the README: the benchmark's strokes split into positive (255) and negative (128) files."""
    assert SCRIPT.exists(), f"console script missing at {SCRIPT}: install the package"
    # Images where plain OpenCV grabCut already reaches IoU 0.85 with set-2 strokes.
    grabcut = shared_dataset("GrabCut")
    for stem in ("llama", "teddy"):
        scribbles = np.asarray(Image.open(grabcut / "scribbles_set2" / f"{stem}.png").convert("L"))
        positive = _save(tmp_path / f"{stem}-pos.png", np.where(scribbles == 255, 255, 0).astype(np.uint8))
        negative = _save(tmp_path / f"{stem}-neg.png", np.where(scribbles == 128, 255, 0).astype(np.uint8))
        image_path = next((grabcut / "images").glob(f"{stem}.*"))
        output = tmp_path / f"{stem}-cut.png"
        run = subprocess.run(
            [str(SCRIPT), "segment", str(image_path), "--positive", positive, "--negative", negative, "-o", str(output)],
            capture_output=True, text=True, timeout=300,
        )
        assert run.returncode == 0, run.stderr
        result = Image.open(output)
        assert result.mode == "RGBA"
        truth = np.asarray(Image.open(grabcut / "masks" / f"{stem}.png").convert("L")) > 127
        assert iou(np.asarray(result)[:, :, 3] > 127, truth) >= 0.85, stem


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("PORT", "abc", "PORT: Input should be a valid integer"),
    ("DEVICE", "gpu", "DEVICE: Value error, must be auto, cpu, cuda or cuda:N (got 'gpu')"),
])
def test_a_bad_setting_is_named_without_a_traceback(name, value, expected):
    env = {**os.environ, name: value}
    run = subprocess.run([sys.executable, "-m", "ml_backend.cli", "engines"], capture_output=True, text=True, env=env)
    assert run.returncode == 2
    assert run.stderr.startswith("scribble-seg: error: ") and expected in run.stderr
    assert "config/defaults.env" in run.stderr and "Traceback" not in run.stderr


def test_a_bad_secret_is_named_but_never_repeated():
    import pydantic

    from ml_backend.settings import describe_settings_error

    class Secrets(pydantic.BaseModel):
        LABEL_STUDIO_API_KEY: int
        PORT: int

    with pytest.raises(pydantic.ValidationError) as error:
        Secrets(LABEL_STUDIO_API_KEY="sekrit-token", PORT="abc")
    message = describe_settings_error(error.value)
    assert "LABEL_STUDIO_API_KEY:" in message and "(got hidden)" in message
    assert "sekrit" not in message and "PORT:" in message and "'abc'" in message


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def test_the_dockerfile_starts_the_server_the_readme_documents_with_the_packaged_extras_and_port():
    import json
    import re
    import tomllib

    from ml_backend.settings import Settings

    instructions = _dockerfile_instructions()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    # The command: the console script the package installs, a subcommand the CLI knows,
    # as the README tells a user to start it.
    [command] = [json.loads(arguments) for name, arguments in instructions if name == "CMD"]
    program, *arguments = command
    assert pyproject["project"]["scripts"][program] == "ml_backend.cli:main"
    assert build_parser().parse_args(arguments).command == "serve"
    assert re.search(rf"^{re.escape(' '.join(command))}\b", (ROOT / "README.md").read_text(), re.MULTILINE)
    # The extras it installs exist, and its torch pins are the ones the sam extra declares.
    arguments_by_name = dict(
        arguments.split("=", 1) for name, arguments in instructions if name == "ARG" and "=" in arguments
    )
    extras = pyproject["project"]["optional-dependencies"]
    assert set(arguments_by_name["EXTRAS"].split(",")) <= set(extras)
    run_lines = " ".join(arguments for name, arguments in instructions if name == "RUN")
    for pin in re.findall(r"\b(torch(?:vision)?==\S+)", run_lines):
        assert pin in extras["sam"], pin
    assert re.findall(r"\btorch==", run_lines) and re.findall(r"\btorchvision==", run_lines)
    # The port: the settings' default, published, and the one the health check asks.
    default_port = Settings.model_fields["PORT"].default
    env = " ".join(arguments for name, arguments in instructions if name == "ENV")
    assert re.search(r"\bPORT=(\d+)", env).group(1) == str(default_port)
    assert [arguments for name, arguments in instructions if name == "EXPOSE"] == [str(default_port)]
    [health] = [arguments for name, arguments in instructions if name == "HEALTHCHECK"]
    assert f"'PORT', '{default_port}'" in health and "/health" in health
