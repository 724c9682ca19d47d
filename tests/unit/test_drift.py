import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from driftline.config import DEFAULT_DRIFT_THRESHOLDS, parse_config
from driftline.monitoring import drift as drift_verdict
from driftline.monitoring.drift import column_drift, detect_drift
from driftline.monitoring.drift_stats import ks_statistic, summarize
from driftline.monitoring.evidently_report import evidently_column_drift, write_report
from driftline.monitoring.reference import ReferenceStats, reference_stats

FEATURES = {"a": "numeric", "b": "numeric", "c": "numeric", "k": "categorical"}
# ties on a fine grid (Sturges bins for psi/js), a constant, missing and infinite values, an unseen category
AWKWARD_FEATURES = {**FEATURES, "d": "numeric", "e": "numeric"}


def drift_config(numeric_method: str, categorical_method: str, features: dict[str, str] = FEATURES, **drift):
    return parse_config(
        {
            "name": "d",
            "registry": {"model_name": "d"},
            "dataset": {"target": "y", "task": "binary", "features": features},
            "drift": {
                "numeric_method": numeric_method,
                "categorical_method": categorical_method,
                "drift_share": 0.5,
                **drift,
            },
        }
    )


def frames(seed: int, shift: float, rows: int = 3000, current_rows: int | None = None):
    rng = np.random.default_rng(seed)

    def make(offset: float, weights: list[float], rows: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "a": rng.normal(offset, 1, rows),
                "b": rng.exponential(1 + offset, rows),
                "c": rng.integers(0, 5, rows).astype(float),
                "k": rng.choice(["x", "y", "z"], rows, p=weights),
            }
        )

    return make(0, [0.5, 0.3, 0.2], rows), make(shift, [0.5 - shift / 2, 0.3, 0.2 + shift / 2], current_rows or rows)


def awkward_frames(seed: int, shift: float, rows: int, current_rows: int):
    reference, current = frames(seed, shift, rows, current_rows)
    rng = np.random.default_rng(seed + 100)
    for frame, offset in ((reference, 0.0), (current, shift)):
        frame["d"] = np.round(rng.normal(offset, 1, len(frame)), 1)
        frame["e"] = 2.0
        frame.loc[rng.choice(len(frame), len(frame) // 50, replace=False), "a"] = np.nan
        frame.loc[rng.choice(len(frame), 3, replace=False), "a"] = [np.inf, -np.inf, np.inf]  # Evidently's
        # dataset-level count drops ±inf only in a column that also holds NaN (its per-column ValueDrift always does)
        frame.loc[rng.choice(len(frame), len(frame) // 100, replace=False), "k"] = None
    current.loc[rng.choice(len(current), 5, replace=False), "k"] = "unseen"
    return reference, current


def test_same_distribution_is_not_drift_and_a_shift_is():
    cfg = drift_config("ks", "chisquare")
    reference, current = frames(seed=1, shift=0.0)
    assert not detect_drift(reference, current, cfg).detected
    reference, current = frames(seed=1, shift=0.3)
    result = detect_drift(reference, current, cfg)
    assert result.detected
    assert set(result.drifted_features) >= {"a", "b", "k"}
    assert result.reasons[0].startswith("75% of features drifted (a, b, k)")


def test_a_category_never_seen_in_reference_is_drift():
    reference = pd.Series(["x", "y"] * 50)
    current = pd.Series(["x", "y"] * 45 + ["new"] * 10)
    column = column_drift(reference, current, "k", "feature", "chisquare", 0.05, numeric=False)
    assert column.drifted and column.statistic == 0.0


def test_prediction_drift_alone_counts_as_dataset_drift():
    cfg = drift_config("ks", "chisquare")
    reference, current = frames(seed=2, shift=0.0)
    rng = np.random.default_rng(0)
    reference_predictions, current_predictions = rng.uniform(0, 0.5, 2000), rng.uniform(0.05, 0.55, 2000)
    result = detect_drift(reference, current, cfg, reference_predictions, current_predictions)
    assert result.detected and result.drifted_feature_share < cfg.drift.drift_share
    p_value = stats.ks_2samp(reference_predictions, current_predictions).pvalue
    assert 0 < p_value < 0.05  # shifted enough to be drift, not so far that the p-value is 0
    prediction = result.prediction_drift
    assert (prediction.method, prediction.drifted) == ("ks", True)
    assert prediction.statistic == pytest.approx(p_value, rel=1e-12)
    assert result.reasons == [f"prediction 'prediction' drifted (ks = {p_value:.3g})"]


@pytest.mark.parametrize("seed", [11, 12, 13])
@pytest.mark.parametrize(("rows", "current_rows"), [(3000, 2000), (15000, 6000)])  # exact KS p-value, asymptotic
@pytest.mark.parametrize(
    ("numeric", "categorical"),
    [("ks", "chisquare"), ("wasserstein", "psi"), ("psi", "jensenshannon"), ("jensenshannon", "chisquare")],
)
def test_decisions_and_statistics_equal_evidently_per_column(seed, rows, current_rows, numeric, categorical):
    cfg = drift_config(numeric, categorical, AWKWARD_FEATURES)
    reference, current = awkward_frames(seed=seed, shift=0.03 * (seed - 10), rows=rows, current_rows=current_rows)
    ours = {c.column: (c.statistic, c.drifted) for c in detect_drift(reference, current, cfg).columns}
    theirs = evidently_column_drift(reference, current, cfg)
    assert set(theirs) == set(ours)
    for column, (value, drifted, _) in theirs.items():
        assert ours[column][1] == drifted, column
        assert ours[column][0] == pytest.approx(value, rel=1e-9, abs=1e-12), column


AUTO_FEATURES = {
    "many": "numeric",
    "three": "numeric",
    "two": "numeric",
    "six": "numeric",
    "bin": "categorical",
    "multi": "categorical",
    "grows": "categorical",
}


def auto_frames(seed: int, rows: int, current_rows: int, shift: float):
    """Columns on each side of the `auto` rule: many values, 3 and 2 (numeric tested as categories), exactly 6,
    2 and 7 categories, and 2 reference categories that the batch grows to 3 (z-test becomes chi-square)."""
    rng = np.random.default_rng(seed)

    def make(rows: int, s: float, grown: list[str]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "many": rng.normal(0.15 * s, 1, rows),
                "three": rng.choice([0.0, 1, 2], rows, p=[0.5 - s / 20, 0.3, 0.2 + s / 20]),
                "two": rng.choice([0.0, 1.0], rows, p=[0.7 - s / 10, 0.3 + s / 10]),
                "six": rng.integers(0, 6, rows) * 1.0,
                "bin": rng.choice(["no", "yes"], rows, p=[0.8 - s / 10, 0.2 + s / 10]),
                "multi": rng.choice(list("abcdefg"), rows),
                "grows": rng.choice(grown, rows),
            }
        )

    reference, current = (
        make(rows, 0.0, ["u", "v"]),
        make(current_rows, shift, ["u", "v", "w"] if shift else ["u", "v"]),
    )
    for frame in (reference, current):  # NaN and ±inf are dropped before the size and the values are counted
        frame.loc[rng.choice(len(frame), 3, replace=False), "many"] = [np.nan, np.inf, -np.inf]
        frame.loc[rng.choice(len(frame), 2, replace=False), "three"] = np.nan
        frame.loc[rng.choice(len(frame), 1, replace=False), "bin"] = None
    return reference, current


# reference rows on both sides of Evidently's 1000-row boundary; it counts a column's non-null rows: of 1002 rows,
# "many" keeps 999 and "three" exactly 1000 (small: p-value tests), "bin" 1001 and "two" 1002 (large: distances)
@pytest.mark.parametrize(
    ("rows", "current_rows", "shift"),
    [(500, 600, 0.0), (500, 600, 1.0), (1000, 800, 1.0), (1002, 800, 1.0), (5000, 3000, 1.0)],
)
def test_auto_chooses_and_decides_as_evidentlys_data_drift_preset_without_a_method(rows, current_rows, shift):
    cfg = drift_config("auto", "auto", AUTO_FEATURES)  # drift_share 0.5: the preset is exactly DataDriftPreset()
    reference, current = auto_frames(seed=rows, rows=rows, current_rows=current_rows, shift=shift)
    ours = {c.column: c for c in detect_drift(reference, current, cfg).columns}
    theirs = evidently_column_drift(reference, current, cfg)
    assert set(theirs) == set(ours)
    for column, (value, drifted, method) in theirs.items():
        assert (ours[column].method, ours[column].drifted) == (method, drifted), column
        assert ours[column].statistic == pytest.approx(value, rel=1e-9, abs=1e-12), column
        assert ours[column].threshold == DEFAULT_DRIFT_THRESHOLDS[method]
    if rows == 1002:
        assert {c: ours[c].method for c in ("many", "three", "bin", "two")} == {
            "many": "ks",
            "three": "chisquare",
            "bin": "jensenshannon",
            "two": "jensenshannon",
        }
    if rows == 500 and shift:  # a batch that brings a third value turns the z-test into chi-square
        assert ours["grows"].method == "chisquare" and ours["two"].method == "z"


def test_the_report_runs_evidently_with_each_columns_method_and_threshold_as_the_verdict_used_them():
    cfg = drift_config("auto", "auto", AUTO_FEATURES)
    reference, current = auto_frames(seed=9, rows=500, current_rows=600, shift=1.0)
    verdict = detect_drift(reference, current, cfg).columns
    verdict = [
        replace(c, threshold=c.statistic * (0.5 if i % 2 else 2.0)) for i, c in enumerate(verdict)
    ]  # as if calibrated
    theirs = evidently_column_drift(reference, current, cfg, verdict)
    assert {c.column: (c.method, c.statistic > 0 and i % 2 == 0) for i, c in enumerate(verdict)} == {
        column: (method, drifted) for column, (_, drifted, method) in theirs.items()
    }
    assert {c.method for c in verdict} == {"ks", "chisquare", "z"}  # "three", "two": numeric, tested as categories


def test_ks_statistic_is_bit_identical_to_scipys_from_either_side():
    rng = np.random.default_rng(8)
    cases = [
        (rng.normal(0, 1, 50_000), rng.normal(0.01, 1, 300)),  # a small batch: its values are visited
        (np.round(rng.normal(0, 1, 400), 1), np.round(rng.normal(0.1, 1, 20_000), 1)),  # ties across samples
        (rng.integers(0, 4, 15_000) * 1.0, rng.integers(1, 6, 12_000) * 1.0),
    ]
    # (above 10,000 rows, where scipy's D is the difference of the two CDFs; its exact branch re-rounds D to k/lcm)
    for reference, current in cases:
        statistic = ks_statistic(summarize(pd.Series(reference), True), summarize(pd.Series(current), True))
        assert statistic == stats.ks_2samp(reference, current).statistic


# exact KS p-value (both ≤ 10,000 rows), then scipy's asymptotic one in each of its regimes (n·D² < 2.2: Pelz-Good;
# 2.2 ≤ n·D² < 370: the Smirnov series, summed vectorized here; ≥ 370: 0), with and without ties
@pytest.mark.parametrize(
    ("rows", "current_rows", "shift", "discrete"),
    [
        (900, 1100, 0.1, False),
        (800, 800, 0.1, True),
        (30000, 500, 0.05, False),
        (20000, 15000, 0.04, False),
        (20000, 15000, 0.3, True),
        (20000, 15000, 1.2, False),
    ],
)
def test_ks_and_wasserstein_equal_scipy_on_exact_and_asymptotic_sizes(rows, current_rows, shift, discrete):
    rng = np.random.default_rng(rows + current_rows)
    reference, current = rng.normal(0, 1, rows), rng.normal(shift, 1.1, current_rows)
    if discrete:  # many ties
        reference, current = np.round(reference * 3), np.round(current * 3)
    expected = stats.ks_2samp(reference, current).pvalue
    ks = column_drift(pd.Series(reference), pd.Series(current), "x", "feature", "ks", 0.05, numeric=True)
    assert ks.statistic == pytest.approx(expected, rel=1e-12, abs=1e-300)
    assert ks.drifted == (expected <= 0.05)
    wasserstein = column_drift(
        pd.Series(reference), pd.Series(current), "x", "feature", "wasserstein", 0.1, numeric=True
    )
    expected = stats.wasserstein_distance(reference, current) / max(np.std(reference), 0.001)
    assert wasserstein.statistic == pytest.approx(expected, rel=1e-12)


def test_ks_p_value_at_the_threshold_is_scipys_own_and_counts_as_drift_as_in_evidently():
    rng = np.random.default_rng(5)
    reference, current = pd.Series(rng.normal(0, 1, 20000)), pd.Series(rng.normal(0.04, 1, 15000))
    p_value = stats.ks_2samp(reference, current).pvalue
    assert 2.2 <= 20000 * 15000 / 35000 * stats.ks_2samp(reference, current).statistic ** 2 < 370  # the summed series
    column = column_drift(reference, current, "x", "feature", "ks", p_value, numeric=True)
    assert column.statistic == p_value and column.drifted


def test_a_large_batch_tested_on_all_cores_gives_exactly_the_one_core_result(monkeypatch):
    cfg = drift_config("ks", "chisquare", AWKWARD_FEATURES)
    reference, current = awkward_frames(seed=31, shift=0.02, rows=150_000, current_rows=drift_verdict.PARALLEL_MIN_ROWS)
    # a core per column, whatever this machine has: on one core the threaded path would not run and nothing is compared
    monkeypatch.setattr(drift_verdict, "usable_cores", lambda: len(AWKWARD_FEATURES))
    on_all_cores = detect_drift(reference, current, cfg)
    monkeypatch.setattr(drift_verdict, "PARALLEL_MIN_ROWS", len(current) + 1)
    assert detect_drift(reference, current, cfg) == on_all_cores


def test_reference_stats_stored_and_loaded_give_exactly_the_direct_result(tmp_path):
    cfg = drift_config("ks", "chisquare", AWKWARD_FEATURES)
    reference, current = awkward_frames(seed=21, shift=0.05, rows=12000, current_rows=4000)
    rng = np.random.default_rng(1)
    reference["y"], current["y"] = rng.integers(0, 2, 12000), rng.choice([0, 1], 4000, p=[0.3, 0.7])
    reference_predictions, current_predictions = rng.uniform(0, 1, 3000), rng.uniform(0.1, 1, 4000)
    stats = reference_stats(reference, cfg, reference_predictions)
    stats.save(tmp_path / "stats")
    loaded = ReferenceStats.load(tmp_path / "stats")
    direct = detect_drift(reference, current, cfg, reference_predictions, current_predictions)
    assert detect_drift(loaded, current, cfg, current_predictions=current_predictions) == direct
    assert [(c.role, c.drifted) for c in direct.columns][-2:] == [("prediction", True), ("target", True)]
    assert loaded.rows == direct.reference_rows == 12000
    assert loaded.columns["a"].rows == np.isfinite(reference["a"]).sum()  # NaN and ±inf left out, float64 kept
    assert loaded.columns["a"].values.dtype == np.float64


def test_an_empty_column_is_not_drift_and_a_constant_one_is_compared():
    empty = column_drift(pd.Series([1.0, 2.0]), pd.Series([np.nan, np.inf]), "x", "feature", "ks", 0.05, True)
    assert math.isnan(empty.statistic) and not empty.drifted
    same = column_drift(pd.Series([2.0] * 500), pd.Series([2.0] * 300), "x", "feature", "psi", 0.1, True)
    assert same.statistic == 0.0 and not same.drifted
    moved = column_drift(pd.Series([2.0] * 500), pd.Series([3.0] * 300), "x", "feature", "wasserstein", 0.1, True)
    assert moved.statistic == pytest.approx(1 / 0.001) and moved.drifted  # std 0: Evidently's floor of 0.001


def test_report_is_built_on_a_bounded_sample(tmp_path, monkeypatch):
    from evidently import Dataset

    handed: list[pd.DataFrame] = []  # the frames Evidently builds its datasets from, two per report
    from_pandas = Dataset.from_pandas.__func__

    def recording(cls, data: pd.DataFrame, **options):
        handed.append(data)
        return from_pandas(cls, data, **options)

    monkeypatch.setattr(Dataset, "from_pandas", classmethod(recording))
    base = drift_config("ks", "chisquare")
    cfg = base.model_copy(update={"drift": base.drift.model_copy(update={"report_sample_rows": 500})})
    reference, current = frames(seed=3, shift=0.2, rows=5000, current_rows=300)

    def sampled(config, name: str) -> dict[int, pd.DataFrame]:
        """The frames one report was built on, by their number of rows."""
        handed.clear()
        path = write_report(reference, current, config, tmp_path / name)
        assert path.stat().st_size > 10_000 and "<html" in path.read_text(errors="ignore")[:2000].lower()
        return {len(frame): frame for frame in handed}

    first = sampled(cfg, "report.html")
    assert sorted(first) == [300, 500]  # 5000 reference rows bounded to 500; a 300-row batch whole
    assert first[500].index.is_unique and set(first[500].index) <= set(reference.index)
    assert first[500].equals(reference.loc[first[500].index, list(FEATURES)])  # rows of the reference, unchanged
    assert first[300].equals(current[list(FEATURES)])
    assert sampled(cfg, "again.html")[500].index.equals(first[500].index)  # the same seed draws the same rows
    reseeded = cfg.model_copy(update={"model": cfg.model.model_copy(update={"seed": cfg.model.seed + 1})})
    assert not sampled(reseeded, "reseeded.html")[500].index.equals(first[500].index)


def test_tiny_batches_get_no_drift_verdict():
    cfg = drift_config("psi", "jensenshannon")
    reference, current = frames(seed=4, shift=0.0)
    result = detect_drift(reference, current.head(1), cfg)
    assert not result.detected
    assert result.note == "1 rows, fewer than drift.min_rows=50: no drift verdict"


def test_data_quality_drift_finds_injected_nulls_new_categories_and_out_of_range_values():
    cfg = drift_config("ks", "chisquare")
    reference, current = frames(seed=3, shift=0.0)
    assert not any(check.breached for check in detect_drift(reference, current, cfg).quality)
    broken = current.copy()
    broken.loc[broken.index[:300], "a"] = np.nan  # 10% nulls where training had none
    broken.loc[broken.index[300:450], "k"] = "brand-new"  # 5% unseen category
    broken.loc[broken.index[450:600], "c"] = 99.0  # 5% above the training maximum of 4
    result = detect_drift(reference, broken, cfg)
    breached = {(q.column, q.check): round(q.current, 3) for q in result.quality if q.breached}
    assert breached == {
        ("a", "null_rate"): 0.1,
        ("k", "unseen_category_share"): 0.05,
        ("c", "out_of_range_share"): 0.05,
    }
    assert result.quality_breaches[0] == "null_rate of 'a' is 10.0% (training 0.0%)"
    assert not any(reason.startswith("data quality") for reason in result.reasons)  # reported, not counted
    assert result.figures()["quality_null_rate_a"] == pytest.approx(0.1)

    counted = drift_config("ks", "chisquare", data_quality={"counts_as_drift": True})
    result = detect_drift(reference, broken, counted)
    assert result.detected and "data quality: unseen_category_share of 'k' is 5.0% (training 0.0%)" in result.reasons
