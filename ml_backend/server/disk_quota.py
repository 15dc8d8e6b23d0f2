"""A disk quota for the result folder: every file in it counts, the oldest go first.

Results (43.8 MB each at 4096x4096) and uploads are kept for ``RESULT_TTL_SECONDS``;
without a quota a few hundred requests fill a disk. Each file's modification time is
its expiry time and all share one TTL, so the soonest to expire is the oldest: those
are evicted until the folder is within ``RESULT_DISK_QUOTA_MB``. Every file counts,
whatever its suffix (results, uploads); the signing key, files still being written
and the file just stored are never evicted.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection
from pathlib import Path

logger = logging.getLogger(__name__)

INCOMING_PREFIX = ".incoming-"


def enforce_disk_quota(
    directory: Path, quota_bytes: int, never_evict: Collection[str] = (), keep_newest: str | None = None
) -> list[str]:
    """Deletes the oldest files until ``directory`` holds at most ``quota_bytes``; returns their names."""
    files: list[tuple[float, str, int]] = []
    total = 0
    with os.scandir(directory) as entries:
        for entry in entries:
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                status = entry.stat(follow_symlinks=False)
            except FileNotFoundError:  # removed by another worker meanwhile
                continue
            total += status.st_size
            if entry.name in never_evict or entry.name == keep_newest or entry.name.startswith(INCOMING_PREFIX):
                continue
            files.append((status.st_mtime, entry.name, status.st_size))
    if total <= quota_bytes:
        return []
    evicted = []
    for _expiry, name, size in sorted(files):
        if total <= quota_bytes:
            break
        try:
            (Path(directory) / name).unlink()
        except FileNotFoundError:
            pass
        total -= size
        evicted.append(name)
    if evicted:
        logger.info("result folder over RESULT_DISK_QUOTA_MB: evicted the %d oldest files", len(evicted))
    return evicted
