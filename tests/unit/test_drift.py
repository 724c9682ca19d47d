import numpy as np
import pandas as pd
import pytest

from driftline import drift
from driftline.config import parse_config


def drift_config(numeric_method: str, categorical_method: str):
    return parse_config({
        "name": "d", "registry": {"model_name": "d"},
        "dataset": {"target": "y", "task": "binary",
                    "features": {"a": "numeric", "b": "numeric", "c": "numeric", "k": "categorical"}},
        "drift": {"numeric_method": numeric_method, "categorical_method": categorical_method, "drift_share": 0.5},
    })  # fmt: skip


def frames(seed: int, shift: float, rows: int = 3000):
    rng = np.random.default_rng(seed)

    def make(offset: float, weights: list[float]) -> pd.DataFrame:
        return pd.DataFrame({
            "a": rng.normal(offset, 1, rows), "b": rng.exponential(1 + offset, rows),
            "c": rng.integers(0, 5, rows).astype(float), "k": rng.choice(["x", "y", "z"], rows, p=weights),
        })  # fmt: skip

    return make(0, [0.5, 0.3, 0.2]), make(shift, [0.5 - shift / 2, 0.3, 0.2 + shift / 2])


def test_same_distribution_is_not_drift_and_a_shift_is():
    cfg = drift_config("ks", "chisquare")
    reference, current = frames(seed=1, shift=0.0)
    assert not drift.detect_drift(reference, current, cfg).detected
    reference, current = frames(seed=1, shift=0.3)
    result = drift.detect_drift(reference, current, cfg)
    assert result.detected
    assert set(result.drifted_features) >= {"a", "b", "k"}
    assert result.reasons[0].startswith("75% of features drifted (a, b, k)")


def test_a_category_never_seen_in_reference_is_drift():
    reference = pd.Series(["x", "y"] * 50)
    current = pd.Series(["x", "y"] * 45 + ["new"] * 10)
    column = drift.column_drift(reference, current, "k", "feature", "chisquare", 0.05, numeric=False)
    assert column.drifted and column.statistic == 0.0


def test_prediction_drift_alone_counts_as_dataset_drift():
    cfg = drift_config("ks", "chisquare")
    reference, current = frames(seed=2, shift=0.0)
    rng = np.random.default_rng(0)
    result = drift.detect_drift(reference, current, cfg, rng.uniform(0, 0.5, 2000), rng.uniform(0.3, 0.9, 2000))
    assert result.detected and result.drifted_feature_share < cfg.drift.drift_share
    assert result.reasons == [f"prediction 'prediction' drifted (ks = {result.columns[-1].statistic:.3g})"]


@pytest.mark.parametrize("seed", [11, 12, 13])
@pytest.mark.parametrize(("numeric", "categorical"), [("ks", "chisquare"), ("wasserstein", "psi"),
                                                      ("psi", "jensenshannon")])  # fmt: skip
def test_decisions_equal_evidently_per_column(seed, numeric, categorical):
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    cfg = drift_config(numeric, categorical)
    reference, current = frames(seed=seed, shift=0.08 * (seed - 10))
    ours = {c.column: (c.statistic, c.drifted) for c in drift.detect_drift(reference, current, cfg).columns}
    definition = DataDefinition(numerical_columns=["a", "b", "c"], categorical_columns=["k"])
    snapshot = Report([DataDriftPreset(num_method=numeric, cat_method=categorical)]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    theirs = {}
    for metric in snapshot.dict()["metrics"]:
        if metric["config"]["type"].endswith("ValueDrift"):
            column, method = metric["config"]["column"], metric["config"]["method"]
            value = metric["value"]
            drifted = (
                value < metric["config"]["threshold"]
                if method in drift.P_VALUE_METHODS
                else value >= metric["config"]["threshold"]
            )
            theirs[column] = (value, drifted)
    assert set(theirs) == set(ours)
    for column, (value, drifted) in theirs.items():
        assert ours[column][1] == drifted, column
        assert ours[column][0] == pytest.approx(value, rel=1e-6, abs=1e-12), column


def test_report_is_built_on_a_bounded_sample(tmp_path):
    cfg = drift_config("ks", "chisquare").model_copy(update={"drift": drift_config("ks", "chisquare").drift.model_copy(
        update={"report_sample_rows": 500})})  # fmt: skip
    reference, current = frames(seed=3, shift=0.2, rows=5000)
    path = drift.write_report(reference, current, cfg, tmp_path / "report.html")
    assert path.stat().st_size > 10_000
    assert "<html" in path.read_text(errors="ignore")[:2000].lower()


def test_tiny_batches_get_no_drift_verdict():
    cfg = drift_config("psi", "jensenshannon")
    reference, current = frames(seed=4, shift=0.0)
    result = drift.detect_drift(reference, current.head(1), cfg)
    assert not result.detected
    assert result.note == "1 rows, fewer than drift.min_rows=50: no drift verdict"
