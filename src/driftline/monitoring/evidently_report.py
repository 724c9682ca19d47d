"""Evidently: the HTML drift report on a bounded sample, the per-model dashboard project and its snapshots.

The only module that imports evidently."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from driftline import file_lock
from driftline.config import DriftlineConfig, Task
from driftline.monitoring.drift import ColumnDrift

# Evidently's display name of each method driftline runs, as its snapshot reports it
EVIDENTLY_METHODS = {
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
    "Wasserstein distance (normed)": "wasserstein",
    "PSI": "psi",
    "Jensen-Shannon distance": "jensenshannon",
}


def _preset(cfg: DriftlineConfig, columns: list[ColumnDrift] | None):
    """Evidently's `DataDriftPreset` with the features' methods and thresholds: as decided per column when `columns`
    are given (so the report shows driftline's verdict), else as configured (`auto`: Evidently chooses; a default
    or calibrated threshold: Evidently's default)."""
    from evidently.presets import DataDriftPreset

    spec = cfg.drift
    if columns is not None:
        features = [c for c in columns if c.role == "feature"]
        return DataDriftPreset(
            per_column_method={c.column: c.method for c in features},
            per_column_threshold={c.column: c.threshold for c in features},
            drift_share=spec.drift_share,
        )

    def configured(method: str) -> tuple[str | None, float | None]:
        if method == "auto":
            return None, None
        return method, None if spec.calibrated(method) else spec.threshold(method)

    (num_method, num_threshold), (cat_method, cat_threshold) = map(
        configured, (spec.numeric_method, spec.categorical_method)
    )
    return DataDriftPreset(
        num_method=num_method,
        cat_method=cat_method,
        num_threshold=num_threshold,
        cat_threshold=cat_threshold,
        drift_share=spec.drift_share,
    )


# Evidently runs these only on columns it types as categorical (its own automatic choice hands them numeric columns
# of at most 5 values all the same): such a column goes to the report as categorical, where the test reads its values.
CATEGORY_TESTS = {"chisquare", "z"}


def _evidently_snapshot(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    cfg: DriftlineConfig,
    include_tests: bool,
    columns: list[ColumnDrift] | None = None,
    **about: Any,
):
    """Evidently's `DataDriftPreset` over the features (see `_preset`); `about` is what Evidently files the run under
    (name, timestamp, tags, metadata)."""
    from evidently import DataDefinition, Dataset, Report

    dataset = cfg.dataset
    as_categories = {c.column for c in columns or [] if c.role == "feature" and c.method in CATEGORY_TESTS}
    definition = DataDefinition(
        numerical_columns=[name for name in dataset.numeric_features if name not in as_categories],
        categorical_columns=[
            name for name in dataset.feature_names if name in as_categories or name in dataset.categorical_features
        ],
    )
    return Report([_preset(cfg, columns)], include_tests=include_tests).run(
        current_data=Dataset.from_pandas(current[dataset.feature_names], data_definition=definition),
        reference_data=Dataset.from_pandas(reference[dataset.feature_names], data_definition=definition),
        **about,
    )


class EvidentlyColumn(NamedTuple):
    statistic: float
    drifted: bool
    method: str  # driftline's name of the method Evidently ran (it reports the one given, or its display name)


def evidently_column_drift(
    reference: pd.DataFrame, current: pd.DataFrame, cfg: DriftlineConfig, columns: list[ColumnDrift] | None = None
) -> dict[str, EvidentlyColumn]:
    """Evidently's own statistic, verdict and method per feature, on all rows: what driftline's decisions are
    checked by. With `columns`, run with their methods and thresholds, as the report is."""
    snapshot = _evidently_snapshot(reference, current, cfg, True, columns).dict()
    drift_metrics = [m for m in snapshot["metrics"] if m["config"]["type"].endswith("ValueDrift")]
    verdicts = {
        t["metric_config"]["params"]["column"]: t["status"] == "FAIL"
        for t in snapshot["tests"]
        if t["metric_config"]["params"]["type"].endswith("ValueDrift")
    }
    return {
        m["config"]["column"]: EvidentlyColumn(
            float(m["value"]),
            verdicts[m["config"]["column"]],
            EVIDENTLY_METHODS.get(m["config"]["method"], m["config"]["method"]),
        )
        for m in drift_metrics
    }


def _sample(frame: pd.DataFrame, cfg: DriftlineConfig) -> pd.DataFrame:
    rows = min(len(frame), cfg.drift.report_sample_rows)
    return frame.sample(n=rows, random_state=cfg.model.seed) if rows < len(frame) else frame


def write_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    cfg: DriftlineConfig,
    path: Path,
    snapshot: Snapshot | None = None,
    columns: list[ColumnDrift] | None = None,
) -> Path:
    """Evidently's data-drift report, on at most `report_sample_rows` rows of each side (it is slow on big data),
    with each feature's method and threshold as driftline's verdict (`columns`) used them, when given.

    With `snapshot`, the same Evidently run also goes to the model's dashboard project (`cfg.folders.dashboard`).
    """
    about = snapshot.about(DRIFT_TAG) if snapshot else {}
    run = _evidently_snapshot(_sample(reference, cfg), _sample(current, cfg), cfg, False, columns, **about)
    path.parent.mkdir(parents=True, exist_ok=True)
    run.save_html(str(path))
    if snapshot is not None and cfg.dashboard.enabled:
        _add_to_dashboard(run, cfg)
    return path


# --- the Evidently dashboard: one project per model in a local workspace, one snapshot per monitoring run -------
DRIFT_TAG, PERFORMANCE_TAG, SLICES_TAG, FAIRNESS_TAG = "drift", "performance", "slices", "fairness"
ESTIMATE_TAG = "estimate"  # the metric estimated before labels, its band, and what the labels realized


EVIDENTLY_METRIC = "evidently:metric_v2:"
FIGURE = "MeanValue"  # how driftline's own figures are carried (add_figures_snapshot)


# Evidently's own metrics of model quality, per task, as the Performance tab plots them
PERFORMANCE_METRICS = {
    Task.binary: ["RocAuc", "Accuracy", "F1Score"],
    Task.multiclass: ["Accuracy", "F1Score"],
    Task.regression: ["RMSE", "MAE"],
}


@dataclass(frozen=True)
class Snapshot:
    """What a dashboard snapshot is about: its name, its time on the dashboard's axis, the model version."""

    name: str
    timestamp: datetime
    model_version: str

    def about(self, tag: str) -> dict[str, Any]:
        """Report.run's arguments that file the run on the dashboard: the panels select it by tag."""
        metadata = {"model_version": self.model_version}
        return {"name": self.name[:200], "timestamp": self.timestamp, "tags": [tag], "metadata": metadata}


def _panel_metric(metric: str, legend: str, tag: str, **labels: str):
    from evidently.sdk.models import PanelMetric

    return PanelMetric(legend=legend, metric=f"{EVIDENTLY_METRIC}{metric}", metric_labels=labels, tags=[tag])


def _dashboard_panels(cfg: DriftlineConfig) -> list[tuple[str, object]]:
    """(tab, panel): drifted-feature share and per-feature drift over time; model performance from label runs."""
    from evidently.sdk.panels import counter_panel, line_plot_panel

    drift_statistic = f"{cfg.drift.numeric_method} / {cfg.drift.categorical_method}"
    return [
        (
            "Drift",
            counter_panel(
                title="Share of drifted features (last run)",
                size="half",
                values=[_panel_metric("DriftedColumnsCount", "share", DRIFT_TAG, value_type="share")],
            ),
        ),
        (
            "Drift",
            line_plot_panel(
                title="Share of drifted features",
                size="half",
                values=[_panel_metric("DriftedColumnsCount", "share", DRIFT_TAG, value_type="share")],
            ),
        ),
        (
            "Drift",
            line_plot_panel(
                title=f"Drift statistic per feature ({drift_statistic})",
                values=[
                    _panel_metric("ValueDrift", name, DRIFT_TAG, column=name) for name in cfg.dataset.feature_names
                ],
            ),
        ),
        (
            "Performance",
            line_plot_panel(
                title=f"Model performance on labeled predictions ({cfg.primary_metric} and more), per scoring batch",
                values=[_panel_metric(name, name, PERFORMANCE_TAG) for name in PERFORMANCE_METRICS[cfg.dataset.task]],
            ),
        ),
        (
            "Performance",
            line_plot_panel(
                title=f"Estimated {cfg.primary_metric} before labels (with its band) and realized on labels, "
                "per scoring batch",
                values=[_panel_metric(FIGURE, "{{column}}", ESTIMATE_TAG)],
            ),
        ),
        (
            "Performance",
            counter_panel(
                title="Labeled predictions per batch",
                size="half",
                aggregation="sum",
                values=[_panel_metric("RowCount", "rows", PERFORMANCE_TAG)],
            ),
        ),
        *_slices_and_fairness_panels(cfg),
    ]


def _slices_and_fairness_panels(cfg: DriftlineConfig) -> list[tuple[str, object]]:
    """driftline's own figures of the champion per labeled batch (as the gate computes them): one line per figure,
    named by Evidently from the snapshot's column (`{{column}}`)."""
    from evidently.sdk.panels import counter_panel, line_plot_panel

    tab, panels = "Slices and fairness", []
    if cfg.gate.slices.columns:
        panels.append(
            (
                tab,
                line_plot_panel(
                    title=f"{cfg.primary_metric} per slice of {', '.join(cfg.gate.slices.columns)}, "
                    "live and at promotion",
                    values=[_panel_metric(FIGURE, "{{column}}", SLICES_TAG)],
                ),
            )
        )
    attribute = cfg.gate.fairness.attribute
    if attribute is not None:
        panels += [
            (
                tab,
                counter_panel(
                    title=f"Disparate impact on {attribute} (last batch)",
                    size="half",
                    values=[
                        _panel_metric(FIGURE, "disparate impact", FAIRNESS_TAG, column=f"disparate_impact[{attribute}]")
                    ],
                ),
            ),
            (
                tab,
                line_plot_panel(
                    title=f"Disparate impact on {attribute}, its minimum, and the positive-prediction rate per group",
                    values=[_panel_metric(FIGURE, "{{column}}", FAIRNESS_TAG)],
                ),
            ),
        ]
    return panels


@contextmanager
def open_dashboard(cfg: DriftlineConfig) -> Iterator[tuple]:
    """The model's Evidently workspace and project (named after the registered model), with the panels the config
    asks for (a panel the project lacks, slices or fairness configured later, is added by its title).

    Held under a lock beside the workspace folder: Evidently reads every snapshot file when it opens a workspace,
    so a run writing one while another command opens the workspace would fail that command on half a file."""
    from evidently.ui.workspace import Workspace

    folder = cfg.folders.dashboard
    with file_lock.held(folder.parent / f".{folder.name}.lock"):
        folder.mkdir(parents=True, exist_ok=True)
        workspace = Workspace(str(folder))
        found = workspace.search_project(cfg.registry.model_name)
        project = (
            found[0]
            if found
            else workspace.create_project(cfg.registry.model_name, description=cfg.description or None)
        )
        present = {panel.title for panel in project.dashboard.model().panels}
        for tab, panel in _dashboard_panels(cfg):
            if panel.title not in present:
                project.dashboard.add_panel(panel, tab=tab)
        yield workspace, project


def _add_to_dashboard(run, cfg: DriftlineConfig) -> str:
    with open_dashboard(cfg) as (workspace, project):
        return str(workspace.add_run(project.id, run).id)


def add_performance_snapshot(
    labeled: pd.DataFrame, cfg: DriftlineConfig, snapshot: Snapshot, prediction: str, probabilities: dict
) -> str | None:
    """Evidently's quality metrics of the model on (a bounded sample of) labeled predictions, to the dashboard.

    `labeled` holds the label under `dataset.target`, the predicted label under `prediction`, and for binary
    tasks `probabilities` maps the positive class to its probability column.
    """
    if not cfg.dashboard.enabled:
        return None
    from evidently import BinaryClassification, DataDefinition, Dataset, MulticlassClassification, Regression, Report
    from evidently import metrics as evidently_metrics

    task, target = cfg.dataset.task, cfg.dataset.target
    if task is Task.regression:
        definition = DataDefinition(regression=[Regression(target=target, prediction=prediction)])
    elif task is Task.binary:
        [(positive, column)] = probabilities.items()
        definition = DataDefinition(
            classification=[
                BinaryClassification(
                    target=target, prediction_labels=prediction, prediction_probas=column, pos_label=positive
                )
            ]
        )
    else:
        definition = DataDefinition(
            classification=[MulticlassClassification(target=target, prediction_labels=prediction)]
        )
    measured = [getattr(evidently_metrics, name)() for name in [*PERFORMANCE_METRICS[task], "RowCount"]]
    current = Dataset.from_pandas(_sample(labeled, cfg), data_definition=definition)
    return _replace_snapshot(
        Report(measured).run(current_data=current, **snapshot.about(PERFORMANCE_TAG)), PERFORMANCE_TAG, cfg
    )


def add_figures_snapshot(figures: dict[str, float], tag: str, cfg: DriftlineConfig, snapshot: Snapshot) -> str | None:
    """Figures driftline computed itself (slices, disparate impact) as a snapshot: Evidently's MeanValue of each
    figure over a one-row dataset is the figure, so the dashboard plots exactly what was judged."""
    if not cfg.dashboard.enabled or not figures:
        return None
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import MeanValue

    one_row = pd.DataFrame([figures])
    current = Dataset.from_pandas(one_row, data_definition=DataDefinition(numerical_columns=list(figures)))
    run = Report([MeanValue(column=name) for name in figures]).run(current_data=current, **snapshot.about(tag))
    return _replace_snapshot(run, tag, cfg)


def _replace_snapshot(run, tag: str, cfg: DriftlineConfig) -> str:
    """Add the run, dropping an earlier one of the same name and tag: labels that arrive in parts leave the batch's
    latest figures."""
    with open_dashboard(cfg) as (workspace, project):
        for snapshot_id in workspace.list_runs(project.id):
            earlier = workspace.get_run(project.id, snapshot_id)
            if earlier is not None and earlier.name == run.get_name() and tag in earlier.tags:
                workspace.delete_run(project.id, snapshot_id)
        return str(workspace.add_run(project.id, run).id)


def dashboard_snapshots(cfg: DriftlineConfig) -> list[dict]:
    """The snapshots of the model's project, oldest first: name, time, tags, metadata (what the UI lists)."""
    with open_dashboard(cfg) as (workspace, project):
        found = [workspace.get_run(project.id, snapshot_id) for snapshot_id in workspace.list_runs(project.id)]
    described = [
        {"name": s.name, "timestamp": s.timestamp, "tags": list(s.tags), "metadata": dict(s.metadata)}
        for s in found
        if s is not None
    ]
    return sorted(described, key=lambda s: s["timestamp"])
