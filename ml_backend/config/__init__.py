"""Defaults that ship inside the package, so a wheel install runs from any folder.

Read with importlib.resources rather than a path next to the source tree: after a
non-editable install the source tree is site-packages, and there is no ``config/`` beside it.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

_PACKAGE = files(__name__)


def defaults_env_path() -> Path:
    """``defaults.env``: every setting with its default and a comment."""
    # setuptools installs package data as plain files, so the resource is a real path.
    return Path(str(_PACKAGE / "defaults.env"))


def labeling_config() -> str:
    """The Label Studio labeling config the project recommends."""
    return (_PACKAGE / "labeling-config.xml").read_text(encoding="utf-8")
