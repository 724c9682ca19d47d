"""How many cores this process may use, and how many of them one thread's model calls take (OpenMP, per thread)."""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path

import joblib
from threadpoolctl import threadpool_limits

CGROUP_ROOT = Path("/sys/fs/cgroup")
_thread_state = threading.local()


def own_cgroup(cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> Path | None:
    """This process's cgroup v2 folder (the `0::/path` line of /proc/self/cgroup); None without cgroup v2."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    path = next((line[3:] for line in lines if line.startswith("0::")), None)
    return None if path is None else cgroup_root / path.lstrip("/")


def cgroup_quota_cores(cgroup: Path | None) -> int | None:
    """The cores the cgroup v2 CPU quota (`cpu.max`: quota and period in µs) of `cgroup` and of every cgroup above it
    allows, the tightest rounded up; None when none sets one. joblib reads only the namespace root's cpu.max, which
    misses a quota set on the process's own cgroup (a systemd unit's CPUQuota=, a cgroup without its own namespace)."""
    if cgroup is None:
        return None
    allowed: list[int] = []
    for folder in (cgroup, *cgroup.parents):
        try:
            quota, period = (folder / "cpu.max").read_text().split()[:2]
        except (OSError, ValueError):  # no cpu.max here (a parent folder, the root cgroup) or not two fields
            continue
        if quota != "max" and int(quota) > 0 and int(period) > 0:
            allowed.append(math.ceil(int(quota) / int(period)))
    return min(allowed) if allowed else None


def usable_cores(cgroup: Path | None = None) -> int:
    """The cores this process may use: its CPU affinity (`os.sched_getaffinity`) and container quota as joblib counts
    them, the cgroup v2 quota of its own cgroup (`cgroup`, default: read from /proc/self/cgroup), and no more than
    OMP_NUM_THREADS when that is set, as scikit-learn's own OpenMP loops would take."""
    cores = joblib.cpu_count()
    quota = cgroup_quota_cores(cgroup if cgroup is not None else own_cgroup())
    if quota is not None:
        cores = min(cores, quota)
    setting = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if setting.isdigit() and int(setting) > 0:
        cores = min(cores, int(setting))
    return max(cores, 1)


def limit_openmp(threads: int = 1) -> None:
    """This thread's model calls use at most `threads` OpenMP threads (the limit is the calling thread's own, so other
    threads keep theirs). Cheap to call again: the limit is set once per thread and value."""
    if getattr(_thread_state, "openmp", None) != threads:
        threadpool_limits(threads, user_api="openmp")
        _thread_state.openmp = threads
