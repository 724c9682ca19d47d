"""Benchmark: a backtest's cost per batch against the same batches through `driftline run`.

Run with `make bench` or `python -m benchmarks.bench_backtest [--repeats N]`. On the demo's files (training data, then
five weekly batches), in fresh workspaces: the first model through the training flow and each batch through the
continuous-training flow, as `driftline run` does; then the same history through `backtest` with the current policy
alone. The replay's time per batch is its wall time, all its own work included (ordering the history, the isolated
workspace and MLflow store, prequential measures, the JSON, chart and page, its MLflow run), less the first model's
training; the direct time per batch is the mean continuous-training run. Exits 1 when the ratio is above 1.2.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks.bench_drift import machine, timed
from driftline.data.demo import write_demo_data
from driftline.errors import DataRejected

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.2


def write_config(folder: Path, data: Path) -> Path:
    """The demo config, as shipped, with its workspace in `folder`."""
    raw = yaml.safe_load((PROJECT_ROOT / "configs" / "demo.yaml").read_text())
    raw["storage"] = {"workspace": str(folder / "workspace"), "allowed_roots": [str(data)]}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "driftline.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def direct(folder: Path) -> tuple[list[float], int]:
    """Seconds of each batch through the continuous-training flow, after the first model (what `driftline run` runs),
    and the number of batches. Each side has its own copy of the demo's files: a rejected batch goes to quarantine."""
    from driftline.flows.continuous_training import continuous_training
    from driftline.flows.params import BatchParams, TrainParams
    from driftline.flows.training import training

    files = write_demo_data(folder / "data")
    config = str(write_config(folder, files.reference.parent))
    training(TrainParams(config=config, data=[str(files.reference)]))
    seconds = []
    for path in files.batches:
        started = time.perf_counter()
        try:
            continuous_training(BatchParams(config=config, data=str(path)))
        except DataRejected:  # batch 5 is rejected in the replay too
            pass
        seconds.append(time.perf_counter() - started)
    return seconds, len(files.batches)


def replayed(folder: Path) -> tuple[float, float]:
    """(the backtest's wall time, its first model's training) with the current policy alone."""
    from driftline.flows.backtest import backtest
    from driftline.flows.params import BacktestParams

    files = write_demo_data(folder / "data")
    config = str(write_config(folder, files.reference.parent))
    history = [str(files.reference), *map(str, files.batches)]
    total, outcome = timed(lambda: backtest(BacktestParams(config=config, data=history, policies=["current"])))
    return total, outcome.backtest.replays[0].start.seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="rounds of each; the fastest round of each counts")
    repeats = parser.parse_args(argv).repeats
    print(f"backtest benchmark: the demo's 5 batches, direct vs replayed, {repeats} round(s) each")
    print(f"machine: {machine()}; load average before: {os.getloadavg()[0]:.2f}")
    from prefect.testing.utilities import prefect_test_harness

    direct_rounds, replay_rounds = [], []
    with tempfile.TemporaryDirectory() as folder, prefect_test_harness(server_startup_timeout=120):
        for round_ in range(repeats):  # interleaved: a load spike on a shared machine hits both sides alike
            seconds, batches = direct(Path(folder) / f"direct-{round_}")
            direct_rounds.append(sum(seconds) / batches)
            total, first_model = replayed(Path(folder) / f"replay-{round_}")
            replay_rounds.append((total - first_model) / batches)
            print(
                f"round {round_ + 1}: direct {direct_rounds[-1]:.2f} s per batch, replayed "
                f"{replay_rounds[-1]:.2f} s per batch (backtest {total:.1f} s, first model {first_model:.1f} s)"
            )
    ratio = min(replay_rounds) / min(direct_rounds)
    print(
        f"replay cost per batch: {ratio:.2f}× the direct runs (target ≤ {TARGET_RATIO}×); "
        f"load average after: {os.getloadavg()[0]:.2f}"
    )
    if ratio > TARGET_RATIO:
        print(f"FAILED: {ratio:.2f}× > {TARGET_RATIO}×")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
