"""The wheel installs one top-level package, `driftline`, with flows/ and tasks/ inside it and no module left out."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory) -> list[str]:
    out, source = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("source")
    # built from a copy, so setuptools' build/ and egg-info stay out of the checkout
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("src", "flows", "tasks"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    # no build isolation: setuptools of the test environment builds it, nothing is downloaded
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet"]
    subprocess.run([*pip_wheel, "-w", str(out), str(source)], check=True, capture_output=True, text=True)
    (wheel,) = out.glob("driftline-*.whl")
    return zipfile.ZipFile(wheel).namelist()


def test_the_wheel_installs_driftline_alone_with_flows_and_tasks_inside(wheel_names):
    top_level = {name.split("/")[0] for name in wheel_names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"driftline"}
    assert "driftline/flows/training.py" in wheel_names
    assert "driftline/tasks/retries.py" in wheel_names


def test_every_module_of_the_repository_is_in_the_wheel(wheel_names):
    sources = {
        **{
            f"driftline/{p.relative_to(ROOT / 'src' / 'driftline')}": p
            for p in (ROOT / "src" / "driftline").rglob("*.py")
        },
        **{f"driftline/flows/{p.relative_to(ROOT / 'flows')}": p for p in (ROOT / "flows").rglob("*.py")},
        **{f"driftline/tasks/{p.relative_to(ROOT / 'tasks')}": p for p in (ROOT / "tasks").rglob("*.py")},
    }
    assert sorted(set(sources) - set(wheel_names)) == []
