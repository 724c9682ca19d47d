"""The fleet demo's setup (`make fleet-demo`): each model's generated data, then its first champion.

Every model of the folder gets the demo data of its task (`driftline.data.demo.write_task_data`: churn for binary,
plans for multiclass, store demand for regression) in <data>/<model name>/, and is trained on its reference file by
`driftline train`, in this one process (one temporary Prefect server for all). A model that already has versions is
left as it is.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from driftline.config import DriftlineConfig, load_fleet
from driftline.data.demo import write_task_data
from driftline.errors import DriftlineError


def set_up(folder: Path, data_dir: Path, progress: Callable[[str], None] = print) -> list[str]:
    """Data and a first champion for every model of the fleet in `folder`; returns the models trained now."""
    from driftline.registry import Registry

    fleet = load_fleet(folder)
    for broken in fleet.broken:
        progress(f"skipped: {broken.problem}")
    trained = []
    for cfg in fleet.configs:
        name = cfg.registry.model_name
        files = write_task_data(data_dir / name, cfg.dataset.task.value)
        batches = ", ".join(path.name for path in files.batches)
        progress(f"{name} ({cfg.dataset.task.value}): data in {data_dir / name}: {files.reference.name}, {batches}")
        versions = Registry(cfg).versions()
        if versions:
            progress(f"{name}: already has {len(versions)} version(s); left as it is")
            continue
        progress(f"{name}: training its first champion on {files.reference.name}")
        _train(cfg, files.reference)
        trained.append(name)
    return trained


def _train(cfg: DriftlineConfig, reference: Path) -> None:
    from driftline.cli.main import main as driftline

    command = ["train", "--config", str(cfg.source), "--data", str(reference), "--reason", "fleet demo: first champion"]
    exit_code = driftline(command)  # it prints the outcome, or the error in one line
    if exit_code != 0:
        raise DriftlineError(f"{cfg.source}: driftline {' '.join(command)} exited {exit_code}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m driftline.stack.fleet_demo", description=__doc__.split("\n")[0])
    parser.add_argument("config", nargs="?", default="configs/fleet-demo", help="the fleet's folder of configs")
    parser.add_argument("--data-dir", default="data/fleet-demo")
    args = parser.parse_args(argv)
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # not its "creating the tables" of a new store
    try:
        set_up(Path(args.config), Path(args.data_dir))
    except DriftlineError as error:
        print(error, file=sys.stderr)
        raise SystemExit(1) from None
    print(f"\nready: bring every model up on one stack with `make up CONFIG={args.config}`, then drop a batch:")
    for cfg in load_fleet(args.config).configs:
        name = cfg.registry.model_name
        landing = (
            cfg.folders.landing.relative_to(Path.cwd())
            if cfg.folders.landing.is_relative_to(Path.cwd())
            else cfg.folders.landing
        )
        print(f"  cp {Path(args.data_dir) / name / 'batch_01_stable.csv'} {landing}/")


if __name__ == "__main__":
    main()
