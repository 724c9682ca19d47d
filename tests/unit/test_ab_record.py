"""A/B tests in the registry and their outcomes (issue 24): the test recorded as a rollout mode (arm B holds
`challenger`, start and end in the audit log, one test at a time, only versions that passed the gate), outcome files
taken in (a bad one quarantined with its reason, bad rows counted) and joined to the arms of the prediction log."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from driftline.ab_tests.analysis import ARM_A, ARM_B, analyse_test, served_arms
from driftline.ab_tests.outcomes import outcomes_folder, receive_outcomes
from driftline.config import load_config
from driftline.data import loading, prediction_log
from driftline.errors import ConfigError, TransitionRefused
from driftline.evaluation.gate import decide
from driftline.governance import rollout
from driftline.registry import Registry
from driftline.registry.ab_tests import AbTest
from driftline.registry.audit_events import Action
from driftline.training.lineage import DataSource, collect_lineage
from driftline.training.train import train_model

STARTED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
AB = {"auto_promote": True, "aggregation": {"revenue": "sum"}}


def a_test(**changes) -> AbTest:
    values = dict(
        id="ab-test",
        version="2",
        champion_version="1",
        share=0.5,
        metrics=["revenue"],
        guardrails=[],
        started_at=STARTED.isoformat(),
        max_days=28,
        unit_column="customer_id",
    )
    return AbTest(**{**values, **changes})


def log_served(log_dir: Path, test: AbTest, units: range, day: datetime) -> pd.Series:
    """What scoring logs under a test: each unit routed by sha256 of arm B's version (rollout.route), answered by
    arm B as challenger or arm A as champion. Returns each unit's arm."""
    ids = pd.Series([str(unit) for unit in units])
    to_b = rollout.route(ids, test.share, salt=test.version) == rollout.CANARY_ARM
    rows = pd.DataFrame(
        {
            "customer_id": ids,
            prediction_log.PREDICTION: 0,
            prediction_log.MODEL_VERSION: np.where(to_b, test.version, test.champion_version),
            prediction_log.SERVED_BY: np.where(to_b, rollout.SERVED_BY_CHALLENGER, rollout.SERVED_BY_CHAMPION),
            prediction_log.SCORED_AT: pd.Timestamp(day),
        }
    )
    prediction_log.append(rows, log_dir, "batch", now=day)
    return pd.Series(np.where(to_b, ARM_B, ARM_A), index=ids)


def drop(folder: Path, name: str, frame: pd.DataFrame) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def ab_cfg(config_factory):
    return load_config(config_factory(ab=AB, landing={"stable_seconds": 0}))


def test_outcome_files_are_taken_in_a_bad_one_quarantined_with_its_reason_and_bad_rows_counted(ab_cfg, tmp_path):
    folder, store = outcomes_folder(ab_cfg), tmp_path / "store"
    drop(folder, "good.csv", pd.DataFrame({"customer_id": ["1", "2", None], "revenue": [5.0, 7.5, 1.0]}))
    drop(folder, "no-unit.csv", pd.DataFrame({"customer": ["1"], "revenue": [5.0]}))
    drop(folder, "no-metric.csv", pd.DataFrame({"customer_id": ["1"], "country": ["fr"]}))
    intake = receive_outcomes(ab_cfg, store, ["revenue"])
    assert intake.accepted == {"good.csv": 2}
    assert intake.skipped == {"good.csv: rows without a 'customer_id'": 1}
    reasons = {Path(line.split(" rejected")[0]).name: line.split(": ", 1)[1] for line in intake.rejected}
    assert reasons == {
        "no-metric.csv": "none of the running test's metrics ['revenue'] is a column (found ['country'])",
        "no-unit.csv": "column 'customer_id' is missing (ab.unit_column, else dataset.id_column)",
    }
    quarantined = sorted(ab_cfg.folders.quarantine.glob("*/validation.json"))
    assert sorted(json.loads(path.read_text())["reasons"][0][:6] for path in quarantined) == ["column", "none o"]
    assert sorted(path.name for path in (folder / "done").iterdir()) == ["good.csv"]
    drop(folder, "again.csv", pd.DataFrame({"customer_id": ["1", "2", None], "revenue": [5.0, 7.5, 1.0]}))
    assert receive_outcomes(ab_cfg, store, ["revenue"]).already_received == ["again.csv"]  # same content, kept once


def test_outcomes_join_the_arms_units_never_served_and_non_numbers_are_counted_and_a_better_b_wins(ab_cfg, tmp_path):
    test, log_dir, store = a_test(), tmp_path / "log", tmp_path / "store"
    arms = log_served(log_dir, test, range(4000), STARTED + timedelta(hours=1))
    arms = pd.concat([arms, log_served(log_dir, test, range(4000, 6000), STARTED + timedelta(days=1, hours=1))])
    found = served_arms(log_dir, test)
    assert found.count(ARM_B) == int((arms == ARM_B).sum()) and found.count(ARM_A) == int((arms == ARM_A).sum())
    assert abs(found.count(ARM_B) / len(arms) - 0.5) < 0.02  # sticky routing by unit, share 0.5
    rng = np.random.default_rng(7)
    revenue = rng.normal(10, 3, len(arms)) + np.where(arms.to_numpy() == ARM_B, 1.0, 0.0)  # B better by 1.0
    outcomes = pd.DataFrame({"customer_id": arms.index, "revenue": revenue.round(2).astype(object)})
    outcomes.loc[:2, "revenue"] = "12,5"  # three values that are not numbers (a decimal comma)
    outcomes = pd.concat([outcomes, pd.DataFrame({"customer_id": ["never-1", "never-2"], "revenue": [3.0, 4.0]})])
    drop(outcomes_folder(ab_cfg), "revenue.csv", outcomes)
    receive_outcomes(ab_cfg, store, ["revenue"])
    report = analyse_test(ab_cfg, test, log_dir, store, at=STARTED + timedelta(days=2))
    assert report.decision == "B wins" and report.halted is None
    assert report.low < 1.0 < report.high and report.low > 0
    assert report.skipped == {
        "metric 'revenue' not a number": 3,
        "units with outcomes never served by the test": 2,
    }
    assert [(day.day, day.units_a + day.units_b) for day in report.days] == [("2026-03-02", 4000), ("2026-03-03", 6000)]
    assert report.next_step(auto_promote=True) == "promote" and report.next_step(auto_promote=False) == "none"


# --- the record in the registry (MLflow on SQLite) ------------------------------------------------------------------
@pytest.mark.slow  # five registered versions
def test_a_test_is_recorded_in_the_registry_refused_for_bad_versions_and_its_promotion_has_the_test_as_evidence(
    ab_cfg, demo_files
):
    batch = loading.load_batch(demo_files["reference"], ab_cfg.dataset)
    trained, registry = train_model(batch.frame, ab_cfg), Registry(ab_cfg)
    source = [DataSource(batch.fingerprint, batch.rows, batch.name, batch.path.name)]

    def register(passed: bool) -> str:
        ref = registry.log_candidate(trained, collect_lineage(ab_cfg, source), "test")
        registry.record_gate(ref, decide(ab_cfg, {ab_cfg.primary_metric: 0.9 if passed else 0.1}, None, None))
        return ref.version

    registry.promote(registry.version_ref(register(True)))
    passed, refused, retired = register(True), register(False), register(True)
    registry.retire(retired, "obsolete")

    def refusal(version: str, share: float = 0.5) -> str:
        with pytest.raises(ConfigError) as raised:
            registry.ab_tests.start(version, share, ["revenue"], [], 28, "customer_id", "try")
        return str(raised.value)

    assert refusal(passed, 1.0) == "--share must be between 0 and 1 (exclusive), got 1"
    assert refusal("9") == "model 'churn-demo' has no version 9; see driftline status"
    assert refusal(refused) == (
        f"v{refused} never passed the gate (its verdict is 'refused'): only a version that passed may enter an A/B test"
    )
    assert refusal(retired) == f"v{retired} is retired: a retired version cannot enter an A/B test"
    assert refusal("1") == "v1 is the champion (arm A): test another version against it"

    test = registry.ab_tests.start(passed, 0.3, ["revenue"], ["refunds"], 14, "customer_id", "does B sell more?")
    assert registry.running_ab_test() == test and registry.alias("challenger").version == passed
    assert (test.champion_version, test.share, test.guardrails, test.max_days) == ("1", 0.3, ["refunds"], 14)
    assert refusal(passed).startswith(f"{test.summary} is running since {test.started_at}: one test at a time")
    fresh = register(True)  # a retrain during the test: registered, arm B keeps `challenger`, arm A stays champion
    assert registry.alias("challenger").version == passed
    with pytest.raises(TransitionRefused, match="arm A stays champion until it ends"):
        registry.promote(registry.version_ref(fresh))

    ended, former = registry.ab_tests.stop(True, "B wins", evidence={"decision": "B wins", "difference": 1.2})
    assert (former.version, registry.champion().version, registry.alias("challenger")) == ("1", passed, None)
    assert registry.running_ab_test() is None and registry.ab_test() == ended and ended.outcome == "promoted"
    started, promoted, stopped = [e for e in registry.audit_log() if e.action != Action.registered][-3:]
    assert (started.action, started.reason, started.evidence["id"]) == (Action.ab_started, "does B sell more?", test.id)
    assert promoted.action == Action.promoted and promoted.after.champion == passed
    assert promoted.evidence["ab_test"]["evidence"] == {"decision": "B wins", "difference": 1.2}
    assert promoted.evidence["ab_test"]["id"] == test.id and stopped.action == Action.ab_stopped
