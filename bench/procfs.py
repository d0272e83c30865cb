"""What /proc tells of a process tree (bin/serve's: the web server and the Celery worker).

CPU seconds (user and system) by role, and peak memory. RSS counts pages shared between forked
processes once per process, so the sum over a tree overstates what it uses; PSS splits shared
pages between their users and is the fairer sum. Both are sampled together, every
`interval_s`, while a measurement runs.
"""

import os
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field


def _children_by_parent() -> dict[int, list[int]]:
    children = defaultdict(list)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children[ppid].append(int(entry.name))
    return children


def children(pid: int) -> list[int]:
    """The processes `pid` started."""
    return _children_by_parent()[pid]


def descendants(root_pid: int) -> list[int]:
    """Every process below `root_pid` (not itself), found through each process's parent."""
    children = _children_by_parent()
    found, todo = [], list(children[root_pid])
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children[pid])
    return found


def role(pid: int) -> str:
    """`web` (imports.web, waitress), `beat` (celery beat), `worker` (a celery worker) or
    `other`, from the command line."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            words = cmdline.read().replace(b"\0", b" ")
    except OSError:
        return "other"
    if b"imports.web" in words:
        return "web"
    if b"celery" not in words:
        return "other"
    return "beat" if b" beat " in words else "worker"


def _kib(path: str, names: tuple[str, ...]) -> dict[str, int]:
    """Fields in kB from a /proc status-like file; missing ones (process gone) are 0."""
    values = dict.fromkeys(names, 0)
    try:
        with open(path) as lines:
            for line in lines:
                name, _, rest = line.partition(":")
                if name in values:
                    values[name] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return values


def cpu_seconds(root_pid: int) -> dict[str, float]:
    """CPU seconds used so far by each role's processes, user and system apart."""
    tick_s = 1 / os.sysconf("SC_CLK_TCK")
    used: dict[str, float] = defaultdict(float)
    for pid in descendants(root_pid):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the name: state is field 3, so utime, stime, cutime, cstime (14-17) are 11-14.
        name = role(pid)
        used[f"{name}_user"] += (int(fields[11]) + int(fields[13])) * tick_s
        used[f"{name}_system"] += (int(fields[12]) + int(fields[14])) * tick_s
    return dict(used)


@dataclass
class MemoryPeaks:
    """Peaks in MiB of the sums over the tree, by role; `hwm` sums each process's own peak.

    `series`: at most one sample a second, (time.monotonic(), PSS, the workers' RSS, the web's
    RSS), to see when memory grows.
    """

    rss: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    pss_total: float = 0.0
    hwm_total: float = 0.0
    samples: int = 0
    series: list[tuple[float, float, float, float]] = field(default_factory=list)


class MemorySampler:
    """Samples the tree under `root_pid` in a thread, from `start()` to `stop()`."""

    def __init__(self, root_pid: int, interval_s: float = 0.2) -> None:
        self.root_pid = root_pid
        self.interval_s = interval_s
        self.peaks = MemoryPeaks()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._roles: dict[int, str] = {}

    def start(self) -> "MemorySampler":
        self._thread.start()
        return self

    def stop(self) -> MemoryPeaks:
        self._stopped.set()
        self._thread.join()
        self.sample()
        hwm = [_kib(f"/proc/{pid}/status", ("VmHWM",))["VmHWM"] for pid in self._tree()]
        self.peaks.hwm_total = sum(hwm) / 1024
        return self.peaks

    def _run(self) -> None:
        while not self._stopped.wait(self.interval_s):
            self.sample()

    def _tree(self) -> list[int]:
        pids = descendants(self.root_pid)
        for pid in pids:
            if pid not in self._roles:
                self._roles[pid] = role(pid)
        return pids

    def sample(self) -> None:
        rss: dict[str, float] = defaultdict(float)
        pss = 0.0
        for pid in self._tree():
            rss[self._roles[pid]] += _kib(f"/proc/{pid}/status", ("VmRSS",))["VmRSS"] / 1024
            pss += _kib(f"/proc/{pid}/smaps_rollup", ("Pss",))["Pss"] / 1024
        rss["total"] = sum(rss.values())
        for name, mib in rss.items():
            self.peaks.rss[name] = max(self.peaks.rss[name], mib)
        self.peaks.pss_total = max(self.peaks.pss_total, pss)
        self.peaks.samples += 1
        now = time.monotonic()
        if not self.peaks.series or now - self.peaks.series[-1][0] >= 1:
            self.peaks.series.append((now, pss, rss["worker"], rss["web"]))
