"""A/B tests acted on through the registry (issue 24), through Prefect and MLflow on SQLite: the scheduled ab-analysis
takes in outcome files, charts the arms and, with ab.auto_promote, promotes a B that wins (the test is the
promotion's evidence); while a test runs arm A is frozen (a drift retrain does not promote) and a rollback ends it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from driftline.ab_tests.outcomes import outcomes_folder
from driftline.config import DriftlineConfig, load_config
from driftline.data import loading
from driftline.evaluation.gate import decide
from driftline.flows.ab_analysis import AbAnalysisParams, ab_analysis
from driftline.flows.batch_scoring import batch_scoring
from driftline.flows.params import RollbackParams, ScoringParams, TrainParams
from driftline.flows.rollback import rollback
from driftline.flows.training import training
from driftline.governance import rollout
from driftline.registry import Registry
from driftline.registry.audit_events import Action
from driftline.tasks.publishing import artifact_key
from driftline.training.lineage import DataSource, collect_lineage
from driftline.training.train import train_model

pytestmark = pytest.mark.slow  # registered versions, trainings
AB = {"auto_promote": True, "aggregation": {"revenue": "sum"}}


def champion_and_passed(cfg: DriftlineConfig, demo_files: dict[str, Path], passed: int = 1) -> Registry:
    """v1 champion, then `passed` more versions whose gate verdict is a pass (not promoted: rollout or test)."""
    batch = loading.load_batch(demo_files["reference"], cfg.dataset)
    trained, registry = train_model(batch.frame, cfg), Registry(cfg)
    source = [DataSource(batch.fingerprint, batch.rows, batch.name, batch.path.name)]
    for _ in range(1 + passed):
        ref = registry.log_candidate(trained, collect_lineage(cfg, source), "test")
        registry.record_gate(ref, decide(cfg, {cfg.primary_metric: 0.9}, None, None))
    registry.promote(registry.version_ref("1"))
    return registry


def score(config_path: Path, data: Path, folder: Path) -> pd.DataFrame:
    """Batch scoring while the test runs: each customer routed to an arm by its id, the arm in every scored row."""
    output = folder / f"{data.stem}.scored.csv"
    batch_scoring(ScoringParams(config=str(config_path), data=str(data), output=str(output)))
    return pd.read_csv(output)


def test_ab_analysis_takes_in_outcomes_and_promotes_a_winning_b_with_the_test_as_evidence(
    config_factory, demo_files, tmp_path
):
    config_path = config_factory(ab=AB, landing={"stable_seconds": 0})
    cfg = load_config(config_path)
    registry = champion_and_passed(cfg, demo_files)
    test = registry.ab_tests.start("2", 0.5, ["revenue"], [], 28, "customer_id", "does v2 sell more?")
    scored = score(config_path, demo_files["stable"], tmp_path)
    to_b = scored["served_by"] == rollout.SERVED_BY_CHALLENGER
    assert set(scored.loc[to_b, "model_version"].astype(str)) == {"2"} and 0.4 < to_b.mean() < 0.6
    rng = np.random.default_rng(11)
    revenue = rng.normal(20, 5, len(scored)) + np.where(to_b, 3.0, 0.0)  # B better by 3.0 a customer
    folder = outcomes_folder(cfg)
    folder.mkdir(parents=True)
    outcomes = pd.DataFrame({"customer_id": scored["customer_id"], "revenue": revenue.round(2)})
    outcomes.to_csv(folder / "day-1.csv", index=False)
    pd.DataFrame({"client": ["c1"], "revenue": [3.0]}).to_csv(folder / "wrong-column.csv", index=False)

    outcome = ab_analysis(AbAnalysisParams(config=str(config_path)))

    assert (outcome.test, outcome.decision, outcome.action, outcome.champion_version) == (
        test.id,
        "B wins",
        "promote",
        "2",
    )
    assert outcome.outcome_files == {"day-1.csv": len(scored)}
    assert outcome.rejected[0].endswith("column 'customer_id' is missing (ab.unit_column, else dataset.id_column)")
    assert registry.champion().version == "2" and registry.running_ab_test() is None
    promoted = [event for event in registry.audit_log() if event.action == Action.promoted][-1]
    evidence = promoted.evidence["ab_test"]
    assert (evidence["id"], evidence["outcome"], evidence["evidence"]["decision"]) == (test.id, "promoted", "B wins")
    assert evidence["evidence"]["low"] > 0 and evidence["evidence"]["arms"][1]["units"] == int(to_b.sum())
    assert registry.audit_log()[-1].action == Action.ab_stopped
    with get_client(sync_client=True) as client:
        [chart] = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[artifact_key(cfg, "ab-test")]))
        )
    assert "**B wins**" in chart.data and f"{datetime.now(UTC):%Y-%m-%d} B ###" in chart.data


def test_during_a_test_a_drift_retrain_does_not_promote_and_a_rollback_ends_the_test_first(config_factory, demo_files):
    config_path = config_factory(ab=AB)
    cfg = load_config(config_path)
    registry = champion_and_passed(cfg, demo_files, passed=2)  # v1 champion, v2 and v3 passed: v1 can go back
    registry.promote(registry.version_ref("2"))
    test = registry.ab_tests.start("3", 0.5, ["revenue"], [], 28, "customer_id", "v3 against v2")

    drifted = [str(demo_files["reference"]), str(demo_files["concept_drift"])]
    retrained = training(TrainParams(config=str(config_path), data=drifted, reason="drift detected"))

    assert retrained.verdict == "held" and retrained.champion_version == "2"
    assert "not promoted: A/B test" in retrained.reasons[-1]
    assert registry.champion().version == "2" and registry.alias("challenger").version == "3"
    assert registry.running_ab_test() == test

    rollback(RollbackParams(config=str(config_path), reason="automatic: v2 degraded"))

    assert registry.champion().version == "1" and registry.running_ab_test() is None
    ended, rolled_back = registry.audit_log()[-2:]
    halted = "halted: the champion is rolled back (automatic: v2 degraded)"
    assert (ended.action, ended.reason) == (Action.ab_stopped, halted)
    assert ended.evidence["ab_test"]["outcome"] == "halted" and rolled_back.action == Action.rolled_back
    assert registry.alias("challenger") is None  # arm B no longer answers
