"""Writable folders default to the user's data and cache folders, never the package's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import ml_backend
from ml_backend.config import defaults_env_path, labeling_config
from ml_backend.engine_registry import SAM
from ml_backend.settings import Settings

PACKAGE_DIR = Path(ml_backend.__file__).resolve().parent


def _fresh_settings(monkeypatch, home: Path) -> Settings:
    for name in ("MODEL_DIR", "RESULT_DIR", "CACHE_DIR", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(home)  # no .env of the checkout is read
    return Settings()


def test_writable_folders_default_to_the_users_folders(monkeypatch, tmp_path):
    settings = _fresh_settings(monkeypatch, tmp_path)
    assert settings.MODEL_DIR == tmp_path / ".local/share/scribble-segmentation/models"
    assert settings.RESULT_DIR == tmp_path / ".local/share/scribble-segmentation/results"
    assert settings.CACHE_DIR == tmp_path / ".cache/scribble-segmentation"
    for folder in (settings.MODEL_DIR, settings.RESULT_DIR, settings.CACHE_DIR):
        assert not folder.resolve().is_relative_to(PACKAGE_DIR)
    assert SAM.checkpoint_path(settings) == settings.MODEL_DIR / "sam_vit_b_01ec64.pth"


def test_the_same_setting_names_still_choose_the_folders(monkeypatch, tmp_path):
    for name in ("MODEL_DIR", "RESULT_DIR", "CACHE_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    settings = Settings()
    assert (settings.MODEL_DIR, settings.RESULT_DIR, settings.CACHE_DIR) == (
        tmp_path / "model_dir", tmp_path / "result_dir", tmp_path / "cache_dir"
    )


def test_defaults_ship_inside_the_package():
    assert defaults_env_path().is_file() and defaults_env_path().resolve().is_relative_to(PACKAGE_DIR)
    assert "ENGINE=geodesic_grabcut" in defaults_env_path().read_text()
    assert "<BrushLabels" in labeling_config()


def test_settings_are_read_from_any_folder(tmp_path):
    """The defaults file is found from the package, not from the working directory."""
    run = subprocess.run(
        [sys.executable, "-c", "from ml_backend.settings import Settings; print(Settings.model_config['env_file'][0])"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(PACKAGE_DIR.parent)},
    )
    assert run.returncode == 0, run.stderr
    assert Path(run.stdout.strip()) == defaults_env_path() and defaults_env_path().is_file()
