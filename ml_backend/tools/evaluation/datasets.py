"""Benchmark folders on disk: images, ground-truth masks, void bands and real scribbles.

A dataset folder holds ``images/`` (any format OpenCV reads), ``masks/`` (PNG,
255 = object, same stem as the image), optionally ``void/`` (PNG, 255 = left
out of every score and never stroked) and scribble folders (PNG, 255 = positive,
128 = negative). A scribble file named ``<stem>.png`` is one sample of image
``<stem>``; files named ``<stem>__<tag>.png`` (MedScribble's ``__ann0``..``__ann2``,
one per annotator) are separate samples of the same image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ...errors import ServerError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: Separates an image stem from a per-annotator tag in scribble file names.
ANNOTATION_SEPARATOR = "__"


class DatasetError(ServerError, ValueError):
    """A dataset folder that does not have the expected layout; the message names the path."""


@dataclass(frozen=True)
class Sample:
    """One benchmark case: an image, its object and, optionally, a set of real scribbles."""

    name: str
    image_path: Path
    mask_path: Path
    void_path: Path | None = None
    scribble_path: Path | None = None

    @property
    def image_stem(self) -> str:
        return self.image_path.stem


@dataclass(frozen=True)
class LoadedSample:
    """A sample's pixels: ``image`` HxWx3 uint8 RGB, the rest HxW bool."""

    sample: Sample
    image: np.ndarray
    ground_truth: np.ndarray
    void: np.ndarray
    positive_scribbles: np.ndarray | None
    negative_scribbles: np.ndarray | None


def _read_grey(path: Path) -> np.ndarray:
    array = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if array is None:
        raise DatasetError(f"{path}: cannot be read as an image")
    return array


def read_rgb(path: Path) -> np.ndarray:
    """Reads any image as HxWx3 uint8 RGB; grey images get three equal channels."""
    array = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if array is None:
        raise DatasetError(f"{path}: cannot be read as an image")
    return np.ascontiguousarray(array[:, :, ::-1])


def split_scribbles(scribble_map: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """255 = positive, 128 = negative; the midpoints between levels tolerate resampled files."""
    positive = scribble_map >= 192
    negative = (scribble_map >= 64) & (scribble_map < 192)
    return positive, negative


def load_sample(sample: Sample) -> LoadedSample:
    image = read_rgb(sample.image_path)
    height, width = image.shape[:2]

    def read_map(path: Path, what: str) -> np.ndarray:
        array = _read_grey(path)
        if array.shape != (height, width):
            raise DatasetError(
                f"{path}: the {what} is {array.shape[1]}x{array.shape[0]} pixels, "
                f"its image {width}x{height}: they must match"
            )
        return array

    ground_truth = read_map(sample.mask_path, "mask") >= 128
    void = (
        read_map(sample.void_path, "void map") >= 128
        if sample.void_path is not None
        else np.zeros((height, width), bool)
    )
    positive = negative = None
    if sample.scribble_path is not None:
        positive, negative = split_scribbles(read_map(sample.scribble_path, "scribble map"))
    return LoadedSample(sample, image, ground_truth, void, positive, negative)


def _files_by_stem(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in suffixes:
            found.setdefault(path.stem, path)
    return found


def _image_stem_of(scribble_stem: str, image_stems: dict[str, Path]) -> str | None:
    """``a__b__ann0`` belongs to image ``a__b`` (image stems may contain the separator too)."""
    candidate = scribble_stem
    while True:
        if candidate in image_stems:
            return candidate
        if ANNOTATION_SEPARATOR not in candidate:
            return None
        candidate = candidate.rsplit(ANNOTATION_SEPARATOR, 1)[0]


def discover_samples(dataset_dir: str | Path, scribbles: str | None = None) -> list[Sample]:
    """All samples of a dataset folder, sorted by name.

    With ``scribbles`` (a subfolder name), only images that have scribbles there
    are samples, one per scribble file. Images without a mask are not samples.
    """
    root = Path(dataset_dir)
    images = _files_by_stem(root / "images", IMAGE_SUFFIXES)
    if not images:
        raise DatasetError(f"dataset: {root / 'images'} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    masks = _files_by_stem(root / "masks", (".png",))
    if not masks:
        raise DatasetError(f"dataset: {root / 'masks'} holds no PNG masks")
    voids = _files_by_stem(root / "void", (".png",))

    scribble_files: dict[str, list[tuple[str, Path]]] = {}
    if scribbles is not None:
        scribble_dir = root / scribbles
        found = _files_by_stem(scribble_dir, (".png",))
        if not found:
            raise DatasetError(f"scribbles: {scribble_dir} holds no PNG scribble maps")
        for stem, path in found.items():
            image_stem = _image_stem_of(stem, images)
            if image_stem is not None:
                scribble_files.setdefault(image_stem, []).append((stem, path))

    samples: list[Sample] = []
    for stem, image_path in images.items():
        if stem not in masks:
            continue
        void_path = voids.get(stem)
        if scribbles is None:
            samples.append(Sample(stem, image_path, masks[stem], void_path))
            continue
        for sample_name, scribble_path in scribble_files.get(stem, []):
            samples.append(Sample(sample_name, image_path, masks[stem], void_path, scribble_path))
    if not samples:
        where = f" with scribbles in {root / scribbles}" if scribbles is not None else ""
        raise DatasetError(f"dataset: {root} has no image with a mask{where}")
    return sorted(samples, key=lambda sample: sample.name)
