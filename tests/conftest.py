"""Shared fixtures: a config per test in its own workspace, small seeded demo data, one Prefect server per session."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import asdict
from functools import partial
from pathlib import Path

import pytest
from testkit.configs import write_config
from testkit.outcomes import TRIED, Tried
from testkit.paths import WEEK, write_frames
from threadpoolctl import threadpool_limits

from driftline.config import DriftlineConfig, load_config
from driftline.data.demo import CONCEPT_DRIFT, COVARIATE_SHIFT, START, inject_quality_faults, make_frame

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@pytest.fixture
def config_factory(tmp_path: Path) -> Callable[..., Path]:
    """Write the demo config with the workspace in tmp_path and a faster model; overrides merge per section."""
    return partial(write_config, tmp_path)


@pytest.fixture
def config_path(config_factory) -> Path:
    return config_factory()


@pytest.fixture
def cfg(config_path: Path) -> DriftlineConfig:
    return load_config(config_path)


@pytest.fixture
def demo_files(tmp_path: Path) -> dict[str, Path]:
    """A small version of the demo's files: training data and one batch of each kind."""
    folder = tmp_path / "data"
    folder.mkdir()
    frames = {
        "reference.parquet": make_frame(3000, seed=1, days=56),
        "stable.csv": make_frame(1000, seed=2, start=START + 9 * WEEK, id_offset=10_000),
        "covariate_shift.csv": make_frame(
            1000, seed=3, start=START + 10 * WEEK, scenario=COVARIATE_SHIFT, id_offset=20_000
        ),
        "concept_drift.csv": make_frame(
            3000, seed=4, start=START + 11 * WEEK, scenario=CONCEPT_DRIFT, id_offset=30_000
        ),
        "faulty.csv": inject_quality_faults(make_frame(800, seed=5, start=START + 12 * WEEK, id_offset=40_000), 5),
    }
    return write_frames(folder, frames)


@pytest.fixture(autouse=True)
def _environment_restored() -> Iterator[None]:
    """A command run in-process sets its libraries' defaults in os.environ (`driftline.cli.main`), such as quieting
    Prefect's console without --verbose: a later test's subprocess must not inherit them."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session", autouse=True)
def _one_openmp_thread() -> Iterator[None]:
    """scikit-learn's OpenMP threads spin against each other and the test's Prefect server on a small busy machine
    (a multiclass fit: 22 s of wall time with them, 0.45 s without); the suite tests answers, not parallel speed."""
    import sklearn.ensemble  # noqa: F401  loads the OpenMP runtime, so the limit applies to it

    with threadpool_limits(1, user_api="openmp"):
        yield


@pytest.fixture(scope="session")
def prefect_api_url() -> Iterator[str]:
    """One temporary Prefect server (with its own SQLite) for the whole session; flows and CLI runs report to it."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield PREFECT_API_URL.value()


def pytest_sessionfinish(session) -> None:
    """Under xdist, each worker hands the faults it tried to the controller, which prints the table."""
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["tried"] = [asdict(row) for row in TRIED]


def pytest_testnodedown(node, error) -> None:
    TRIED.extend(Tried(**row) for row in getattr(node, "workeroutput", {}).get("tried", []))


def pytest_terminal_summary(terminalreporter) -> None:
    """Print the reliability table (tests/reliability): every fault or bad input tried and what happened."""
    if not TRIED:
        return
    width = max(len(row.case) for row in TRIED)
    terminalreporter.section("faults and bad inputs tried")
    terminalreporter.write_line(f"{'case':<{width}}  held  expected -> observed")
    for row in TRIED:
        mark = "yes " if row.held else "NO  "
        shown = row.expected if row.held else f"{row.expected} -> {row.observed}"
        terminalreporter.write_line(f"{row.case:<{width}}  {mark}  {shown}")
