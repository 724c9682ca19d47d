from pathlib import Path

import pytest
import yaml
from testkit.paths import DEMO_CONFIG

from driftline.config import Task, load_config
from driftline.errors import ConfigError


def write_config(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    mutate(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_demo_config_loads_with_derived_defaults():
    cfg = load_config(DEMO_CONFIG)
    assert cfg.dataset.task is Task.binary
    assert cfg.primary_metric == "roc_auc"
    assert cfg.dataset.categorical_features == ["contract", "payment_method", "region"]
    assert cfg.tracking_uri.endswith(".driftline/mlflow.db")
    assert cfg.drift.threshold("ks") == 0.05


@pytest.mark.parametrize("thresholds", ["calibrated", {"ks": "calibrated", "chisquare": "0.01"}])
def test_calibrated_thresholds_and_automatic_methods_are_plain_config_values(tmp_path, thresholds):
    """As a YAML file or a `--set drift.thresholds=calibrated`-style override writes them (strings included)."""
    path = write_config(
        tmp_path,
        lambda d: d["drift"].update(
            numeric_method="auto", categorical_method="auto", thresholds=thresholds, calibration={"batch_rows": "2000"}
        ),
    )
    drift = load_config(path).drift
    assert (drift.numeric_method, drift.calibration.batch_rows, drift.calibration.quantile) == ("auto", 2000, 0.99)
    assert drift.calibrated("ks") and drift.any_calibrated
    assert drift.calibrated("chisquare") == (thresholds == "calibrated")
    assert drift.threshold("chisquare") == (0.05 if thresholds == "calibrated" else 0.01)
    assert drift.threshold("ks", signal=True) == 0.001  # prediction and label drift: the stricter signal level


def test_environment_overrides_the_tracking_uri(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert load_config(DEMO_CONFIG).tracking_uri == "http://127.0.0.1:5999"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["gate"].update(min_improvement=-1),
            "gate.min_improvement: Input should be greater than 0 (got -1)",
        ),
        (lambda d: d["gate"].update(min_improvement=0), "gate.min_improvement: Input should be greater than 0 (got 0)"),
        (lambda d: d["dataset"].update(colour="blue"), "dataset.colour: unknown key"),
        (
            lambda d: (d["dataset"].pop("event_time_column"), d["model"]["holdout"].update(strategy="time")),
            "model.holdout.strategy 'time' needs dataset.event_time_column",
        ),
        (lambda d: d["dataset"].pop("target"), "dataset.target: required but missing"),
        (
            lambda d: d["dataset"]["features"].update(churned="numeric"),
            "target 'churned' is also listed under features",
        ),
        (lambda d: d["model"].update(estimator="sklearn.ensemble.NoSuchForest"), "does not import"),
        (lambda d: d["model"].update(estimator="os.system"), "is not under an allowed module ['sklearn']"),
        (
            lambda d: d["dataset"].update(task="clustering"),
            "dataset.task: Input should be 'binary', 'multiclass' or 'regression'",
        ),
        (lambda d: d["gate"].update(metric="rmse"), "gate metric 'rmse' does not apply to task binary"),
        (lambda d: d["retraining"].update(size=None), "window 'last_batches' needs size"),
        (lambda d: d["drift"].update(thresholds={"kolmogorov": 0.1}), "unknown methods ['kolmogorov']"),
        (lambda d: d["drift"].update(thresholds="calibrate"), "drift.thresholds: must be 'calibrated' or a mapping"),
        (
            lambda d: d["drift"].update(thresholds={"ks": "tight"}),
            "drift.thresholds: ks: must be a number or 'calibrated'",
        ),
        (
            lambda d: (d["labels"].update(enabled=False), d.update(rollout={"mode": "canary"})),
            "rollout.mode 'canary' judges the challenger on labeled batches: it needs dataset.id_column and labels.enabled",
        ),
        (
            lambda d: d.update(rollout={"mode": "shadow", "canary_share": 1}),
            "rollout.canary_share: Input should be less than 1",
        ),
    ],
)
def test_bad_config_names_file_field_and_fix(tmp_path, mutate, expected):
    path = write_config(tmp_path, mutate)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value).startswith(str(path))
    assert expected in str(error.value)


def test_missing_and_unparseable_config_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found; copy configs/demo.yaml"):
        load_config(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("dataset: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)
    broken.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping of sections"):
        load_config(broken)


def test_estimator_defaults_to_the_task_and_must_fit_it(tmp_path):
    regression = write_config(
        tmp_path,
        lambda d: (
            d["dataset"].update(task="regression"),
            d["model"].pop("estimator"),
            d["gate"].update(metric="rmse", thresholds={}),
        ),
    )
    assert load_config(regression).model.estimator == "sklearn.ensemble.HistGradientBoostingRegressor"
    mismatch = write_config(tmp_path, lambda d: d["model"].update(estimator="sklearn.linear_model.Ridge", params={}))
    with pytest.raises(
        ConfigError, match="model.estimator sklearn.linear_model.Ridge is not a classifier, but dataset"
    ):
        load_config(mismatch)


def test_labels_need_an_id_column_and_default_to_the_dataset_columns(config_factory):
    with pytest.raises(ConfigError, match="labels.enabled needs dataset.id_column"):
        load_config(config_factory(labels={"enabled": True}, dataset={"id_column": None}))
    cfg = load_config(config_factory(labels={"enabled": True}))
    assert (cfg.label_id_column, cfg.label_column) == ("customer_id", "churned")
    assert cfg.folders.labels == cfg.folders.root / "labels" / "churn-demo"
    assert "performance_degraded" in cfg.notifications.events
