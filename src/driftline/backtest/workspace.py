"""Isolated replays: each policy in a temporary workspace with its own SQLite MLflow store, so a backtest never
touches the user's registry, archive, quarantine, dashboards or Prefect artifacts, and leaves nothing behind."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from driftline.backtest.delay import LaterFile, without_labels
from driftline.backtest.ordering import HistoryFile
from driftline.backtest.policies import Policy, with_overrides
from driftline.config import DriftlineConfig, parse_config

REPLAYED_MODEL_SUFFIX = "-backtest"  # its events, artifacts and training limit never match the live model's


@dataclass(frozen=True)
class ReplayWorkspace:
    """Where one policy replays: its copy of the config and of every file of the history, in time order: the files
    that train the first champion, then the files replayed one by one."""

    policy: Policy
    config: Path
    first: list[Path]
    later: list[LaterFile]
    label_delay: int  # a later file's labels reach the loop this many batches after it (0: with it)
    tracking_uri: str


def isolated_config(cfg: DriftlineConfig, policy: Policy, root: Path, label_delay: int = 0) -> dict:
    """The user's config with the policy's changes, its storage in `root` and a fresh SQLite store there.

    Every folder the config names is dropped (the workspace holds them all); the model is renamed, so that the
    replay's Prefect events (notifications), artifacts and training limit stay apart from the live model's; a
    manual gate or a shadow/canary rollout becomes the automatic gate. Under a label delay the label path is on:
    late labels reach the loop as label files.
    """
    data = with_overrides(yaml.safe_load(cfg.source_text), policy.overrides)
    data["storage"] = {"workspace": str(root / "workspace")}
    data["registry"] = {
        "model_name": f"{cfg.registry.model_name}{REPLAYED_MODEL_SUFFIX}",
        "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
        "environment_wins": False,  # the user's MLFLOW_TRACKING_URI names their real store
    }
    for section, folder in [
        ("landing", "folder"),
        ("scoring", "inbox"),
        ("labels", "folder"),
        ("dashboard", "workspace"),
    ]:
        if isinstance(data.get(section), dict):
            data[section].pop(folder, None)
    # Nobody approves a replayed challenger, and no label run judges a held one: the automatic gate decides.
    data["gate"] = {**(data.get("gate") or {}), "mode": "auto"}
    data["rollout"] = {**(data.get("rollout") or {}), "mode": "off"}
    if label_delay:
        data["labels"] = {**(data.get("labels") or {}), "enabled": True}
    parse_config(data, f"{cfg.source or 'config'} under policy {policy.name!r}")  # one line naming a bad --set
    return data


@contextmanager
def sandbox() -> Iterator[Path]:
    """The backtest's temporary folder, removed with everything in it when the block ends (or fails)."""
    with tempfile.TemporaryDirectory(prefix="driftline-backtest-") as folder:
        yield Path(folder)


@contextmanager
def replay_workspace(
    cfg: DriftlineConfig, policy: Policy, history: list[HistoryFile], initial: int, label_delay: int, parent: Path
) -> Iterator[ReplayWorkspace]:
    """A policy's workspace under `parent`, its config pinned to its own MLflow store (the environment's
    MLFLOW_TRACKING_URI and MLflow UI address do not apply to it); removed when the block ends.

    The files are copies: a rejected file is moved into the replay's quarantine, never the user's. Under a label
    delay each later file is also split into the file without its labels and its label file."""
    root = parent / re.sub(r"[^A-Za-z0-9_.-]+", "-", policy.name).strip("-")[:80]
    files = []
    for position, file in enumerate(history):
        copy = root / "history" / f"{position:03d}" / file.name
        copy.parent.mkdir(parents=True)
        shutil.copyfile(file.path, copy)
        files.append(copy)
    later = [LaterFile(copy, copy) for copy in files[initial:]]
    if label_delay:
        later = [
            without_labels(copy, root / "seen" / copy.parent.name / copy.name, root / "labels" / copy.parent.name, cfg)
            for copy in files[initial:]
        ]
    data = isolated_config(cfg, policy, root, label_delay)
    config = root / "driftline.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    tracking_uri = data["registry"]["tracking_uri"]
    try:
        yield ReplayWorkspace(policy, config, files[:initial], later, label_delay, tracking_uri)
    finally:
        shutil.rmtree(root, ignore_errors=True)
