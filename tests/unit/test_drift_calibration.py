import numpy as np
import pandas as pd
import pytest
import yaml
from testkit.paths import DEMO_CONFIG

from driftline.config import parse_config
from driftline.data.demo import CONCEPT_DRIFT, COVARIATE_SHIFT, START, make_frame
from driftline.modeling.pipeline import predict
from driftline.monitoring.calibration import (
    CHUNKS,
    Calibration,
    RestStatistics,
    at_size,
    chunks,
    ladder,
    threshold_from_spread,
    window_statistic,
    without,
)
from driftline.monitoring.drift import detect_drift
from driftline.monitoring.drift_stats import STATISTICS, summarize
from driftline.monitoring.reference import ReferenceStats, calibrate, reference_stats
from driftline.training.train import train_model

PERIOD = 8000  # rows per season of the seasonal feature


def seasonal_config(**drift):
    return parse_config(
        {
            "name": "s",
            "registry": {"model_name": "s"},
            "dataset": {
                "target": "y",
                "task": "binary",
                "event_time_column": "t",
                "features": {"a": "numeric", "b": "numeric", "c": "numeric", "k": "categorical"},
            },
            "drift": {"target_drift": False, **drift},
        }
    )


def seasonal_rows(rng: np.random.Generator, start: int, rows: int, shift: float = 0.0) -> pd.DataFrame:
    """A world that moves by itself: the mean of `a` and the share of `k` follow seasons; `b` and `c` do not move
    (`shift` moves `a` and `b`)."""
    season = 2 * np.pi * (start + np.arange(rows)) / PERIOD
    return pd.DataFrame(
        {
            "t": pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(start + np.arange(rows), unit="min"),
            "a": rng.normal(0.3 * np.sin(season) + shift, 1),
            "b": rng.normal(shift / 2, 1, rows),
            "c": rng.exponential(1, rows),
            "k": np.where(rng.random(rows) < 0.3 + 0.05 * np.cos(season), "x", "y"),
            "y": rng.integers(0, 2, rows),
        }
    )


def test_chunks_of_training_rows_are_compared_with_the_rest_and_set_the_threshold_at_the_spreads_quantile():
    values = pd.Series(np.round(np.random.default_rng(1).normal(0, 1, 3000), 1))
    part = values.iloc[100:600]
    rest = without(summarize(values, True), summarize(part, True))
    assert np.array_equal(rest.values, np.sort(pd.concat([values.iloc[:100], values.iloc[600:]]).to_numpy()))
    labels = pd.Series(list("aabbbc") * 50)
    rest = without(summarize(labels, False), summarize(labels.iloc[:6], False))
    assert rest.counts.to_dict() == {"a": 98, "b": 147, "c": 49}
    windows = chunks(3000, 500)  # evenly spaced from the first row to the last, overlapping
    assert len(windows) == CHUNKS and (windows[0], windows[-1]) == (slice(0, 500), slice(2500, 3000))
    assert [w.start for w in chunks(60_000, 500)[:3]] == [0, 601, 1202]  # more rows than 100 batches: gaps
    spread = list(np.linspace(0.0, 0.99, 100))  # p-values: the 1 % quantile, never above the method's own threshold
    assert threshold_from_spread(spread, "ks", floor=0.05, quantile=0.99) == pytest.approx(0.0099)
    assert threshold_from_spread([0.5] * 100, "ks", floor=0.05, quantile=0.99) == 0.05
    assert threshold_from_spread(spread, "wasserstein", floor=0.1, quantile=0.99) == pytest.approx(0.9801)
    assert threshold_from_spread([float("nan")], "wasserstein", floor=0.1, quantile=0.99) is None


@pytest.mark.parametrize("ties", [False, True])
def test_a_windows_ks_and_wasserstein_against_the_rest_need_not_build_the_rest(ties):
    rng = np.random.default_rng(2)
    values = pd.Series(rng.normal(0, 1, 60_000) + np.repeat([0.0, 0.2], 30_000))  # the second half moved
    values = values.round(1) if ties else values
    reference = summarize(values, True)
    rest = RestStatistics(reference)
    for rows in (slice(0, 12_000), slice(45_000, 57_000), slice(20_000, 20_300)):
        window = summarize(values.iloc[rows], True)
        for method in ("ks", "wasserstein"):
            built = STATISTICS[method](without(reference, window), window)
            assert window_statistic(method, reference, window, rest) == pytest.approx(built, rel=1e-9), (method, rows)


def test_calibrated_thresholds_know_the_seasons_of_the_training_data_and_still_flag_a_real_shift(tmp_path):
    rng = np.random.default_rng(3)
    train = seasonal_rows(rng, 0, 4 * PERIOD)
    fixed, calibrated = seasonal_config(), seasonal_config(thresholds="calibrated", calibration={"batch_rows": 2000})
    stats = reference_stats(train, calibrated)
    stats = ReferenceStats(
        stats.rows, stats.columns, calibration=calibrate(stats, train, train.head(0), [], calibrated)
    )
    stats.save(tmp_path / "stats")
    stats = ReferenceStats.load(tmp_path / "stats")  # stored with the version's statistics, read back
    batches = [seasonal_rows(rng, int(start), 2000) for start in rng.integers(4 * PERIOD, 8 * PERIOD, 40)]
    assert sum(detect_drift(stats, batch, fixed).detected for batch in batches) >= 20  # the seasons "drift"
    assert sum(detect_drift(stats, batch, calibrated).detected for batch in batches) <= 2  # at most 5 %
    shifted = detect_drift(stats, seasonal_rows(rng, 5 * PERIOD, 2000, shift=0.8), calibrated)
    assert shifted.detected and shifted.drifted_features == ["a", "b"]
    a, b = shifted.columns[:2]
    assert a.calibrated and a.threshold < 1e-10 and b.calibrated and 1e-3 < b.threshold <= 0.05  # b: about its default


def calibrated_stats(train: pd.DataFrame, cfg, folder) -> ReferenceStats:
    """Calibrated statistics of training rows from one file, stored with the version and read back."""
    stats = reference_stats(train, cfg)
    ReferenceStats(stats.rows, stats.columns, calibration=calibrate(stats, train, train.head(0), [], cfg)).save(folder)
    return ReferenceStats.load(folder)


@pytest.mark.slow
def test_a_first_training_from_one_file_is_calibrated_for_every_batch_size_and_judges_each_batch_at_its_own(tmp_path):
    rng = np.random.default_rng(5)
    train = seasonal_rows(rng, 0, 4 * PERIOD)
    undeclared = seasonal_config(thresholds="calibrated")
    stats = calibrated_stats(train, undeclared, tmp_path / "one-file")
    assert ladder(len(train), undeclared.drift) == [50, 200, 800, 3200, 12800, 16000]
    assert stats.calibration.batch_rows is None
    assert list(stats.calibration.columns["a"]["ks"]) == ladder(len(train), undeclared.drift)
    for rows in (400, 1000, 3000):  # judged at its own size: near what declaring that size at training gives
        declared = seasonal_config(thresholds="calibrated", calibration={"batch_rows": rows})
        exact = calibrated_stats(train, declared, tmp_path / str(rows)).calibration
        for column, method in (("a", "ks"), ("b", "ks"), ("k", "chisquare")):
            wanted = np.log10(exact.threshold("feature", column, method))
            found = np.log10(stats.calibration.threshold("feature", column, method, rows))
            assert abs(found - wanted) <= 0.3 * abs(wanted), (rows, column, found, wanted)
    fixed = seasonal_config()
    for rows in (500, 4000):  # sizes nobody declared: the seasons do not alarm, a real shift does
        batches = [seasonal_rows(rng, int(start), rows) for start in rng.integers(4 * PERIOD, 8 * PERIOD, 20)]
        assert sum(detect_drift(stats, batch, fixed).detected for batch in batches) >= 6
        assert sum(detect_drift(stats, batch, undeclared).detected for batch in batches) <= 1
        shifted = detect_drift(stats, seasonal_rows(rng, 5 * PERIOD, rows, shift=1.0), undeclared)
        assert shifted.detected and shifted.drifted_features == ["a", "b"]


def test_a_threshold_between_calibrated_sizes_is_interpolated_in_log_rows_and_held_at_the_ends():
    p_values = {100: 1e-2, 400: 1e-6}
    assert at_size(p_values, 200, p_value=True) == pytest.approx(1e-4)  # halfway in log rows, log p
    assert at_size(p_values, 50, p_value=True) == 1e-2 and at_size(p_values, 10_000, p_value=True) == 1e-6
    assert at_size({100: 0.1, 400: 0.3}, 200, p_value=False) == pytest.approx(0.2)
    old = {"batch_rows": 2000, "quantile": 0.99, "columns": {"a": {"ks": 0.001}}, "prediction": {"psi": 0.2}}
    read = Calibration.from_dict(old)  # a version calibrated before thresholds had sizes: one size, any batch
    assert read.threshold("feature", "a", "ks", 500) == 0.001 and read.threshold("prediction", "x", "psi") == 0.2


def test_a_version_without_calibrated_thresholds_is_judged_by_the_defaults(tmp_path):
    rng = np.random.default_rng(4)
    train, batch = seasonal_rows(rng, 0, 6000), seasonal_rows(rng, 6000, 2000)
    stats = reference_stats(train, seasonal_config())
    stats.save(tmp_path / "old")
    manifest = tmp_path / "old" / "stats.json"  # a version registered before calibration existed
    manifest.write_text(manifest.read_text().replace(',\n "calibration": null', ""))
    columns = detect_drift(
        ReferenceStats.load(tmp_path / "old"), batch, seasonal_config(thresholds="calibrated")
    ).columns
    assert [(c.threshold, c.calibrated) for c in columns] == [(0.05, False)] * 4


@pytest.mark.slow
def test_calibrated_demo_model_raises_no_alarm_on_training_like_batches_and_catches_the_demo_shifts():
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    data["drift"].update(thresholds="calibrated", calibration={"batch_rows": 2000})
    cfg = parse_config(data)
    trained = train_model(make_frame(6000, 7, START, days=56), cfg)  # the demo's training data
    assert trained.reference.stats.calibration.batch_rows == 2000
    batches = [make_frame(2000, 100 + seed, START + pd.Timedelta(days=63)) for seed in range(40)]
    shifts = [make_frame(2000, 8, scenario=COVARIATE_SHIFT), make_frame(4000, 9, scenario=CONCEPT_DRIFT)]
    signal = predict(trained.model, pd.concat(batches + shifts), cfg.dataset).signal(cfg.dataset.task)
    results, start = [], 0
    for batch in batches + shifts:
        results.append(
            detect_drift(trained.reference.stats, batch, cfg, current_predictions=signal[start:][: len(batch)])
        )
        start += len(batch)
    assert sum(result.detected for result in results[:40]) <= 2  # at most 5 % false alarms
    assert results[40].detected and results[41].detected
    assert all(c.calibrated for c in results[40].columns)  # features, prediction and label alike
