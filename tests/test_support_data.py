"""The tests find the shared datasets beside the repository or through the override, and fail when absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.data import REPOSITORY, SHARED_ENV, shared_dataset


def test_the_default_is_the_shared_folder_beside_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SHARED_ENV, raising=False)
    assert shared_dataset("GrabCut") == REPOSITORY.parent / "shared" / "datasets" / "GrabCut"
    assert (shared_dataset("GrabCut") / "images").is_dir()


def test_the_override_names_another_shared_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "datasets" / "Tiny").mkdir(parents=True)
    monkeypatch.setenv(SHARED_ENV, str(tmp_path))
    assert shared_dataset("Tiny") == tmp_path / "datasets" / "Tiny"


def test_a_missing_dataset_fails_naming_where_it_looked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(SHARED_ENV, str(tmp_path))
    with pytest.raises(pytest.fail.Exception) as failure:
        shared_dataset("GrabCut")
    message = str(failure.value)
    assert str(tmp_path / "datasets" / "GrabCut") in message and SHARED_ENV in message
