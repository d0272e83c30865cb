"""What /proc tells of the processes a service started: parents, children, process groups."""

from pathlib import Path

PROC = Path("/proc")


def stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat after the command name (which may hold spaces): state, ppid, pgrp, ..."""
    return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()


def _pids() -> list[int]:
    return [int(entry.name) for entry in PROC.iterdir() if entry.name.isdigit()]


def parents() -> dict[int, int]:
    """Every running process's parent, by pid."""
    found = {}
    for pid in _pids():
        try:
            found[pid] = int(stat_fields(pid)[1])
        except OSError:  # ended meanwhile
            continue
    return found


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    return [child for child, parent in parents().items() if parent == pid]


def descendants(pid: int) -> set[int]:
    """`pid` and every process it started, however deep."""
    of = parents()
    found, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        new = {child for child, its in of.items() if its == parent} - found
        found |= new
        frontier.extend(new)
    return found


def alive(pids: set[int]) -> set[int]:
    """Those of `pids` that still run (a zombie has ended: only its exit status is left)."""
    running = set()
    for pid in pids:
        try:
            if stat_fields(pid)[0] != "Z":
                running.add(pid)
        except OSError:
            continue
    return running


def group_members(pgid: int) -> set[int]:
    """The processes of process group `pgid` still running."""
    members = set()
    for pid in _pids():
        try:
            if int(stat_fields(pid)[2]) == pgid:
                members.add(pid)
        except OSError:
            continue
    return alive(members)


def command_line(pid: int) -> str:
    """The process's command line; "" once it is gone (bin/serve's own `sleep`s come and go)."""
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""
