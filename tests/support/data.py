"""Where the tests find the shared datasets: ``../shared`` beside the repository, or an override.

The data (GrabCut, MedScribble, ...) is never copied into the repository. It lives in
a ``shared`` folder next to the checkout; ``SCRIBBLE_SEG_SHARED`` names another one.
A test that needs a dataset that is not there fails naming both places, rather than
skipping: a skipped accuracy test looks like a passed one in a summary.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
SHARED_ENV = "SCRIBBLE_SEG_SHARED"


def shared_folder() -> Path:
    """The shared folder: ``$SCRIBBLE_SEG_SHARED`` when set, else ``../shared`` from the repository root."""
    override = os.environ.get(SHARED_ENV)
    return Path(override) if override else REPOSITORY.parent / "shared"


def shared_dataset(name: str) -> Path:
    """``<shared>/datasets/<name>``; the calling test fails, naming where it looked, when it is absent."""
    folder = shared_folder() / "datasets" / name
    if not folder.is_dir():
        pytest.fail(
            f"dataset {name!r} not found at {folder}: put the shared folder beside the repository "
            f"({REPOSITORY.parent / 'shared'}) or set {SHARED_ENV} to it",
            pytrace=False,
        )
    return folder
