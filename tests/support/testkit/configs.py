"""Configs the tests write: the demo config in a workspace of their own, with a faster model and their overrides;
and one per kind of task on the demo data (binary churn, multiclass contract, regression monthly charges)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from testkit.paths import DEMO_CONFIG

DEMO_FEATURES = yaml.safe_load(DEMO_CONFIG.read_text())["dataset"]["features"]


def _task(target: str, task: str, metric: str, **model: str) -> dict:
    features = {name: kind for name, kind in DEMO_FEATURES.items() if name != target}
    return {
        "dataset": {"target": target, "task": task, "features": features},
        "gate": {"metric": metric, "thresholds": {}},
        **({"model": model} if model else {}),
    }


# Sections that turn the demo config into each kind of task; the demo itself is the binary one.
TASK_KINDS: dict[str, dict] = {
    "binary": {},
    "multiclass": _task("contract", "multiclass", "f1_macro"),
    "regression": _task(
        "monthly_charges", "regression", "rmse", estimator="sklearn.ensemble.HistGradientBoostingRegressor"
    ),
}


def of_kind(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Demo rows as data of that kind of task: the churn label is the binary target, undeclared for the others."""
    return frame.copy() if kind == "binary" else frame.drop(columns=["churned"])


def write_config(folder: Path, file_name: str = "driftline.yaml", **sections: dict) -> Path:
    """The demo config with its workspace in `folder` and a faster model; each override merges into its section."""
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    data["storage"] = {"workspace": str(folder / "workspace")}
    data["model"]["params"] = {"max_iter": 60, "learning_rate": 0.1, "max_leaf_nodes": 15}
    for section, values in sections.items():
        if isinstance(values, dict) and isinstance(data.get(section), dict):
            data[section] = {**data[section], **values}
        else:
            data[section] = values
    path = folder / file_name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# The classes each kind's champion is trained on, and each kind of bad label in the first 10 of 200 rows of a batch:
# (case, kind, column, bad value, the one reason its rejection gives).
TRAINED_CLASSES = {"binary": [0, 1], "multiclass": ["month-to-month", "one-year", "two-year"], "regression": None}
MULTICLASS_UNSEEN = (
    "target 'contract' has classes ['lifetime'] the champion was never trained on (it knows "
    "['month-to-month', 'one-year', 'two-year'])"
)
BAD_LABELS = [
    (
        "a third class in a binary target",
        "binary",
        "churned",
        2,
        "dataset.task is binary but target 'churned' has classes ['0', '1', '2']: ['2'] not among the champion's classes "
        "['0', '1']; fix the labels (a binary model learns exactly two classes)",
    ),
    (
        "null labels",
        "binary",
        "churned",
        None,
        "column 'churned': 10 of 200 rows have no label; fill them in or drop those rows",
    ),
    (
        "a class the multiclass champion never saw",
        "multiclass",
        "contract",
        "lifetime",
        f"{MULTICLASS_UNSEEN}; fix the labels, or set validation.allow_new_classes: true to learn them at the next "
        "retrain",
    ),
    (
        "non-finite regression labels",
        "regression",
        "monthly_charges",
        np.inf,
        "column 'monthly_charges': 10 labels are not finite numbers (e.g. inf); a regression target needs a number on "
        "every row",
    ),
]
