"""`driftline ab` as a user calls it (issue 24): plan, start, status, stop; every bad argument a one-line error with
exit 2, the test's start and end in the audit log."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from driftline.ab_tests.outcomes import outcomes_folder
from driftline.config import load_config
from driftline.data import loading, prediction_log
from driftline.evaluation.gate import decide
from driftline.registry import Registry
from driftline.training.lineage import DataSource, collect_lineage
from driftline.training.train import train_model

pytestmark = pytest.mark.slow


def versions(cfg, demo_files) -> Registry:
    """v1 champion; v2 passed its gate; v3 refused by it; v4 passed, then retired."""
    batch = loading.load_batch(demo_files["reference"], cfg.dataset)
    trained, registry = train_model(batch.frame, cfg), Registry(cfg)
    source = [DataSource(batch.fingerprint, batch.rows, batch.name, batch.path.name)]
    for passed in (True, True, False, True):
        ref = registry.log_candidate(trained, collect_lineage(cfg, source), "test")
        registry.record_gate(ref, decide(cfg, {cfg.primary_metric: 0.9 if passed else 0.1}, None, None))
    registry.promote(registry.version_ref("1"))
    registry.retire("4", "obsolete")
    return registry


def test_ab_commands_refuse_bad_arguments_in_one_line_and_record_the_test(run_cli, config_factory, demo_files):
    config_path = config_factory(landing={"stable_seconds": 0})
    canary_config = config_factory(
        file_name="canary.yaml", rollout={"mode": "canary"}, labels={"enabled": True, "min_rows": 100}
    )
    cfg = load_config(config_path)
    registry = versions(cfg, demo_files)
    config = str(config_path)

    def refused(*args: str, config: str = config) -> str:
        answer = run_cli("ab", "start", "--config", config, "--metric", "revenue", "--reason", "try", *args)
        assert answer.returncode == 2, answer.stderr
        [line] = answer.stderr.strip().splitlines()
        return line

    assert refused("--version", "2", "--share", "0") == (
        "driftline: --share must be between 0 and 1 (exclusive), got 0"
    )
    assert refused("--version", "2", "--share", "1.5") == (
        "driftline: --share must be between 0 and 1 (exclusive), got 1.5"
    )
    assert refused("--version", "9") == "driftline: model 'churn-demo' has no version 9; see driftline status"
    assert refused("--version", "3") == (
        "driftline: v3 never passed the gate (its verdict is 'refused'): only a version that passed may enter an A/B "
        "test"
    )
    assert refused("--version", "4") == "driftline: v4 is retired: a retired version cannot enter an A/B test"
    registry.client.set_registered_model_alias(cfg.registry.model_name, "challenger", "2")  # a canary of v2 on
    assert refused("--version", "2", config=str(canary_config)) == (
        "driftline: a canary rollout of v2 is on (rollout.mode canary, challenger v2): an A/B test of v2 cannot share "
        "the traffic; wait for its verdict or set rollout.mode: off"
    )

    no_log = run_cli("ab", "plan", "--config", config, "--metric", "revenue", "--effect", "1")
    assert no_log.returncode == 2 and no_log.stderr.strip().splitlines() == [
        "driftline: no past outcomes of 'revenue' to measure its spread on (0 units): drop outcome files "
        "(`customer_id, revenue`) in the outcomes folder first"
    ]
    folder = outcomes_folder(cfg)
    folder.mkdir(parents=True)
    units = [f"c{unit}" for unit in range(1000)]
    revenue = np.random.default_rng(3).normal(20, 5, len(units)).round(2)
    pd.DataFrame({"customer_id": units, "revenue": revenue}).to_csv(folder / "last-month.csv", index=False)
    served = pd.DataFrame({"customer_id": units, "prediction": 0, "scored_at": pd.Timestamp(datetime.now(UTC))})
    prediction_log.append(served, registry.folders.prediction_log, "batch")
    plan = run_cli("ab", "plan", "--config", config, "--metric", "revenue", "--effect", "1")
    assert plan.returncode == 0, plan.stderr
    assert "at 1000 units a day, about" in plan.stdout and "to find a difference of 1 in revenue (sd 5" in plan.stdout

    started = run_cli(
        "ab", "start", "--config", config, "--version", "2", "--share", "0.3", "--metric", "revenue",
        "--guardrail", "refunds", "--max-days", "14", "--reason", "does v2 sell more?",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    test = registry.running_ab_test()
    assert started.stdout.startswith(f"started A/B test {test.id}: v2 (B, 30% of units) against v1 (A)")
    assert refused("--version", "2").startswith(f"driftline: A/B test {test.id}: v2 (B, 30% of units) against v1")
    assert refused("--version", "2").endswith(
        "one test at a time per model; end it first: driftline ab stop --config C --promote|--keep --reason '...'"
    )
    status = run_cli("ab", "status", "--config", config)
    assert status.returncode == 0 and "running, day 0.0 of 14" in status.stdout
    assert "waiting for outcomes: 0 units of A and 0 of B have 'revenue'" in status.stdout
    shown = json.loads(run_cli("ab", "status", "--config", config, "--json").stdout)
    assert (shown["test"]["id"], shown["test"]["guardrails"], shown["report"]["decision"]) == (
        test.id,
        ["refunds"],
        "running",
    )

    kept = run_cli("ab", "stop", "--config", config, "--keep", "--reason", "not convinced")
    assert kept.returncode == 0 and kept.stdout.startswith("kept v1 as champion; v2 no longer answers")
    again = run_cli("ab", "stop", "--config", config, "--keep", "--reason", "again")
    assert again.returncode == 2 and again.stderr.strip() == (
        "driftline: model 'churn-demo' has no A/B test running; see driftline ab status"
    )
    audit = json.loads(run_cli("audit", "--config", config, "--json").stdout)["events"]
    assert [(e["action"], e["version"], e["reason"]) for e in audit[-2:]] == [
        ("ab_started", "2", "does v2 sell more?"),
        ("ab_stopped", "2", "not convinced"),
    ]
    assert audit[-1]["evidence"]["ab_test"]["outcome"] == "kept" and registry.alias("challenger") is None
