"""Shadow, canary and A/B rollout in batch scoring, through Prefect and MLflow on SQLite: a challenger that passed its
gate is held, tried on live batches, and promoted (or dropped) by its labeled rows, or split by customer in a test."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from driftline.config import load_config
from driftline.data import prediction_log
from driftline.data.demo import CONCEPT_DRIFT, START, make_frame
from driftline.flows.batch_scoring import batch_scoring
from driftline.flows.params import LabelParams, ScoringParams, TrainParams
from driftline.flows.performance_monitoring import performance_monitoring
from driftline.flows.training import training
from driftline.governance import rollout
from driftline.registry import Registry
from driftline.registry.audit_events import Action

pytestmark = pytest.mark.slow  # two trainings per test
WEEK = pd.Timedelta(days=7)
# Labels that would show v1 degraded in the concept-drift world must not start a retraining in these tests, nor may
# their drift (49 % churned in training, 61 % there): label drift retrains as a drift alarm with drift.retrain.
LABELS = {"enabled": True, "min_rows": 100, "max_degradation": 1.0, "retrain": False}
NO_RETRAIN = {"labels": LABELS, "drift": {"retrain": False}}


def held_challenger(config_path: Path, demo_files: dict[str, Path], *challenger_data: str) -> Registry:
    """v1 (reference) is champion; v2 (trained on `challenger_data`, judged on the newest rows, of the concept drift)
    passes its gate and is held as challenger."""
    first = training(TrainParams(config=str(config_path), data=[str(demo_files["reference"])]))
    second = training(TrainParams(config=str(config_path), data=[str(demo_files[name]) for name in challenger_data]))
    assert (first.verdict, second.verdict) == ("promoted", "held"), second.reasons
    assert second.champion_version == "1"
    registry = Registry(load_config(config_path))
    assert registry.champion().version == "1" and registry.live_challenger().version == "2"
    assert registry.audit_log()[-1].action == Action.held
    return registry


def new_world_batch(folder: Path, seed: int, rows: int = 1500) -> Path:
    path = folder / f"batch-{seed}.csv"
    make_frame(rows, seed=seed, start=START + 13 * WEEK, scenario=CONCEPT_DRIFT, id_offset=seed * 100_000).to_csv(
        path, index=False
    )
    return path


def score(config_path: Path, data: Path, folder: Path) -> pd.DataFrame:
    output = folder / f"{data.stem}.scored.parquet"
    batch_scoring(ScoringParams(config=str(config_path), data=str(data), output=str(output)))
    return pd.read_parquet(output)


def send_labels(config_path: Path, batches: list[Path], folder: Path):
    labels = pd.concat([pd.read_csv(path)[["customer_id", "churned"]] for path in batches])
    path = folder / "labels.csv"
    labels.to_csv(path, index=False)
    return performance_monitoring(LabelParams(config=str(config_path), data=str(path)))


def logged_rows(registry: Registry) -> pd.DataFrame:
    files = prediction_log.log_files(registry.folders.prediction_log)
    return prediction_log.read_window(files).frame


def test_shadow_challenger_scores_beside_the_champion_and_is_promoted_after_clean_labeled_batches(
    config_factory, demo_files, tmp_path
):
    config_path = config_factory(**NO_RETRAIN, rollout={"mode": "shadow", "shadow_batches": 2, "min_rows": 100})
    registry = held_challenger(config_path, demo_files, "reference", "concept_drift")
    batches = [new_world_batch(tmp_path, seed) for seed in (6, 7)]
    for batch in batches:
        served = score(config_path, batch, tmp_path)
        assert set(served["model_version"]) == {"1"} and "served_by" not in served  # only the champion serves
    logged = logged_rows(registry)
    assert set(logged[prediction_log.SHADOW_MODEL_VERSION]) == {"2"} and len(logged) == 3000
    scoring_run = registry.client.search_runs([registry.experiment_id], "tags.`driftline.run_type` = 'scoring'")[0]
    assert 0 < scoring_run.data.metrics["shadow_agreement"] < 1  # the concept changed: the models disagree

    outcome = send_labels(config_path, batches, tmp_path)

    assert outcome.labeled_rows == 3000
    run = registry.client.search_runs([registry.experiment_id], "tags.`driftline.run_type` = 'performance'")[0]
    for arm in ("champion", "challenger"):  # both models' AUC per shadow batch, at the batches' steps
        history = registry.client.get_metric_history(run.info.run_id, f"shadow_{arm}_roc_auc")
        assert sorted(point.step for point in history) == [0, 1]
    assert registry.champion().version == "2" and registry.live_challenger() is None
    promoted = registry.audit_log()[-1]
    assert promoted.action == Action.promoted and promoted.version == "2"
    assert promoted.reason.startswith("shadow rollout of v2: promote: 2 of 2 labeled shadow batches")


def test_canary_answers_its_share_of_ids_and_a_worse_canary_is_dropped(config_factory, demo_files, tmp_path):
    config_path = config_factory(**NO_RETRAIN, rollout={"mode": "canary", "canary_share": 0.3, "min_rows": 100})
    registry = held_challenger(config_path, demo_files, "concept_drift")
    # the canary's world is the reference's (v1's), where v2, trained on the concept drift only, is worse
    batch = tmp_path / "old-world.csv"
    make_frame(3000, seed=8, start=START + 13 * WEEK, id_offset=800_000).to_csv(batch, index=False)

    served = score(config_path, batch, tmp_path)

    canary = served["served_by"] == "challenger"
    assert 0.27 < canary.mean() < 0.33
    assert set(served.loc[canary, "model_version"]) == {"2"} and set(served.loc[~canary, "model_version"]) == {"1"}
    expected = rollout.route(served["customer_id"], 0.3, salt="2") == rollout.CANARY_ARM
    assert (canary.to_numpy() == expected).all()  # by id hash: the same id always gets the same model
    assert (logged_rows(registry)[prediction_log.SERVED_BY] == served["served_by"]).all()

    send_labels(config_path, [batch], tmp_path)

    assert registry.champion().version == "1" and registry.live_challenger() is None
    dropped = registry.audit_log()[-1]
    assert dropped.action == Action.refused and dropped.version == "2"
    assert dropped.reason.startswith("canary rollout of v2: drop: accuracy canary")
    assert registry.version_tags("2")["driftline.gate.verdict"] == "refused"


def test_an_ab_test_answers_each_customer_with_one_arm_in_every_batch_file_until_it_stops(
    config_factory, demo_files, tmp_path
):
    registry = held_challenger(config_factory(**NO_RETRAIN, rollout={"mode": "shadow"}), demo_files, "concept_drift")
    config_path = config_factory("ab.yaml", **NO_RETRAIN)  # rollout off: an A/B test may take the traffic
    test = Registry(load_config(config_path)).ab_tests.start("2", 0.4, ["revenue"], [], 14, "customer_id", "try v2")
    monday, tuesday = tmp_path / "monday.csv", tmp_path / "tuesday.csv"  # the same customers, other rows
    make_frame(2000, seed=9, start=START + 13 * WEEK, id_offset=900_000).to_csv(monday, index=False)
    make_frame(2000, seed=10, start=START + 14 * WEEK, id_offset=900_000).to_csv(tuesday, index=False)

    first, second = score(config_path, monday, tmp_path), score(config_path, tuesday, tmp_path)

    assert 0.36 < (first["arm"] == "B").mean() < 0.44
    assert first["arm"].tolist() == second["arm"].tolist()
    split = rollout.AbSplit.of(test)
    assert first["arm"].tolist() == split.arms(first["customer_id"]).tolist()  # as the online service routes them
    assert (first["model_version"] == first["arm"].map({"A": "1", "B": "2"})).all()
    assert (first["served_by"] == first["arm"].map({"A": "champion", "B": "challenger"})).all()
    logged = logged_rows(registry)
    logged = logged[logged[prediction_log.SOURCE] == monday.name]
    assert logged[prediction_log.SERVED_BY].tolist() == first["served_by"].tolist()

    Registry(load_config(config_path)).ab_tests.stop(False, "kept")
    after = score(config_path, monday, tmp_path)

    assert "arm" not in after and set(after["model_version"]) == {"1"}
