"""The cores driftline's thread pools take: the CPU affinity and the cgroup v2 quota of the process, not the host's."""

from __future__ import annotations

import os
import subprocess
import sys

import joblib
import pytest

from driftline.modeling.threads import cgroup_quota_cores, own_cgroup, usable_cores


def _cgroup_tree(tmp_path, quotas: dict[str, str]):
    """A fake cgroup v2 hierarchy: {relative folder: contents of its cpu.max}."""
    for folder, cpu_max in quotas.items():
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / folder / "cpu.max").write_text(cpu_max + "\n")
    return tmp_path


def test_a_quota_of_one_and_a_half_cores_allows_two_threads(tmp_path):
    root = _cgroup_tree(tmp_path, {"app.slice/driftline.service": "150000 100000"})
    assert cgroup_quota_cores(root / "app.slice/driftline.service") == 2


def test_the_tightest_quota_above_the_process_cgroup_counts(tmp_path):
    root = _cgroup_tree(tmp_path, {"kubepods": "100000 100000", "kubepods/pod/container": "max 100000"})
    assert cgroup_quota_cores(root / "kubepods/pod/container") == 1
    assert usable_cores(root / "kubepods/pod/container") == 1


def test_no_quota_of_its_own_leaves_the_cores_affinity_and_namespace_allow(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    root = _cgroup_tree(tmp_path, {"user.slice": "max 100000"})
    assert cgroup_quota_cores(root / "user.slice") is None
    # joblib's count: the affinity and the cgroup namespace root's quota (none on most test machines)
    assert usable_cores(root / "user.slice") == joblib.cpu_count() <= len(os.sched_getaffinity(0))


def test_the_process_cgroup_is_read_from_its_proc_entry(tmp_path):
    proc = tmp_path / "cgroup"
    proc.write_text("4:memory:/other\n0::/system.slice/driftline.service\n")
    assert own_cgroup(tmp_path / "fs", proc) == tmp_path / "fs/system.slice/driftline.service"
    assert own_cgroup(tmp_path / "fs", tmp_path / "missing") is None


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to pin the child to one")
def test_a_process_pinned_to_one_cpu_uses_one_core():
    pinned = subprocess.run(
        [sys.executable, "-c", "from driftline.modeling.threads import usable_cores; print(usable_cores())"],
        preexec_fn=lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}),
        env={key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert pinned.stdout.strip() == "1"
