"""How many cores this process may use, and how many of them one thread's model calls take (OpenMP, per thread)."""

from __future__ import annotations

import os
import threading

import joblib
from threadpoolctl import threadpool_limits

_thread_state = threading.local()


def usable_cores() -> int:
    """The cores this process may use: its CPU affinity and container quota (as joblib counts them), and no more
    than OMP_NUM_THREADS when that is set, as scikit-learn's own OpenMP loops would take."""
    cores = joblib.cpu_count()
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
