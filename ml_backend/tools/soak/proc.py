"""What ``/proc`` says about the server: its processes, their sockets and their memory."""

from __future__ import annotations

import os
from pathlib import Path


def command_line(pid: int) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None


def child_pids(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc/<pid>/task/*/children, else a /proc scan)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields start after the last ')'.
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(parent, []).append(int(entry.name))
    found, frontier = [], [pid]
    while frontier:
        children = parents.get(frontier.pop(), [])
        found += children
        frontier += children
    return found


def open_files(pid: int) -> list[str]:
    """What the process's descriptors point at (``socket:[inode]`` for sockets).

    A busy process opens and closes descriptors while we list them: one that is gone
    by the time we read it is skipped, not taken as the whole process being gone.
    """
    try:
        descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return []
    targets = []
    for descriptor in descriptors:
        try:
            targets.append(os.readlink(descriptor))
        except OSError:
            continue
    return targets


def listening_pids(port: int) -> list[int]:
    """Processes holding a socket that listens on ``port`` (the parent and workers share it)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "0A":  # 0A: LISTEN
                inodes.add(fields[9])
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        targets = open_files(int(entry.name))
        if any(f"socket:[{inode}]" in targets for inode in inodes):
            pids.append(int(entry.name))
    return sorted(pids)


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
