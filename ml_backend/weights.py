"""Fetching model checkpoints safely; which ones exist and where they come from is the engine registry's.

A download streams to ``<file>.part`` (kept between attempts, so a broken download
resumes with an HTTP range request), is checked against its published SHA-256,
and only then renamed into place, so a checkpoint path never holds half a file.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from .engine_registry import CHECKPOINTS, Checkpoint
from .errors import ServerError

_CHUNK = 1 << 20


class ChecksumMismatch(ServerError, RuntimeError):
    """A downloaded or present file is not the published one."""


class CheckpointDownloadError(ServerError, RuntimeError):
    """The file could not be fetched (network, HTTP status)."""


def known_checkpoint(name: str) -> Checkpoint:
    """The registry's checkpoint called ``name`` (or one of its aliases, in any case)."""
    wanted = name.lower()
    for checkpoint in CHECKPOINTS.values():
        if wanted == checkpoint.name or wanted in checkpoint.aliases:
            return checkpoint
    choices = ", ".join(sorted(CHECKPOINTS))
    raise ValueError(f"unknown checkpoint {name!r}: known ones are {choices} (or give a url)")


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
