"""The loop as it runs in production, asserted through the Prefect and MLflow APIs: deployments on a Prefect server,
runs on a process worker, MLflow's registry on its server, both on PostgreSQL, new data announced by the watcher.

The tests share one stack and build on each other in file order: a champion first, then new data, then races.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
from mlflow import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentFlowRunId,
)
from testkit.live_stack import (
    Stack,
    aliases,
    arrival_events,
    deployment_id,
    drop,
    finished,
    runs_of,
    start_run,
    wait_until_final,
)
from testkit.waiting import wait_for

pytestmark = pytest.mark.integration


def test_a_run_started_through_the_api_with_parameters_completes(live_stack: Stack):
    reference = {"config": str(live_stack.config_path), "data": [str(live_stack.data["reference"])]}
    done = wait_until_final(start_run(live_stack, "training", {**reference, "reason": "initial"}).id)
    assert done.state.is_completed(), done.state.message
    assert done.parameters["params"]["reason"] == "initial"
    assert aliases(live_stack) == {"champion": "1"}
    # the same data again cannot beat v1 by gate.min_improvement: v2 is registered, refused, and notified
    again = wait_until_final(start_run(live_stack, "training", {**reference, "reason": "same data"}).id)
    assert again.state.is_completed(), again.state.message
    assert aliases(live_stack) == {"champion": "1", "challenger": "2"}


def test_a_scheduled_run_happens_and_a_paused_schedule_creates_none(live_stack: Stack):
    scheduled = wait_for(
        lambda: [r for r in runs_of(live_stack, "drift-monitoring", auto_scheduled=True) if r.state.is_completed()],
        timeout=120,
        what="a scheduled drift-monitoring run to complete",
    )
    assert scheduled[0].parameters["params"]["config"] == str(live_stack.config_path)
    assert runs_of(live_stack, "batch-scoring", auto_scheduled=True) == []  # deployed with active: false
    with get_client(sync_client=True) as client:  # pause it, as the UI's schedule toggle does
        deployment = client.read_deployment(deployment_id(live_stack, "drift-monitoring"))
        client.update_deployment_schedule(deployment.id, deployment.schedules[0].id, active=False)
    wait_for(
        lambda: not [r for r in runs_of(live_stack, "drift-monitoring", auto_scheduled=True) if r.state.is_scheduled()],
        timeout=60,
        what="paused schedule to drop its future runs",
    )


def test_a_dropped_file_runs_continuous_training_once_and_its_copy_never(live_stack: Stack):
    drop(live_stack, "concept_drift")
    [run] = wait_for(lambda: runs_of(live_stack, "continuous-training"), 60, "the file to start a run")
    done = wait_until_final(run.id, timeout=300)
    assert done.state.is_completed(), done.state.message
    assert done.parameters["params"]["data"] == str(live_stack.cfg.folders.landing / "concept_drift.csv")
    assert aliases(live_stack) == {"champion": "3", "previous": "1"}  # concept drift → retrained → promoted

    drop(live_stack, "concept_drift", as_name="concept_drift_again.csv")
    copies = wait_for(lambda: arrival_events(live_stack, "concept_drift_again.csv"), 30, "the copy's event")
    assert [event["resource"]["driftline.duplicate"] for event in copies] == ["true"]
    assert copies[0]["payload"]["duplicate_of"].endswith("concept_drift.csv")
    time.sleep(10)  # time enough for a wrong trigger to fire
    assert len(runs_of(live_stack, "continuous-training")) == 1


def test_the_triggered_run_publishes_what_a_reviewer_reads_in_the_prefect_ui(live_stack: Stack):
    """Validation table, drift per feature with the Evidently report, scoring summary, and (in the retraining subflow)
    the gate's challenger-vs-champion markdown with its links to MLflow: the artifacts of the concept-drift run."""
    [run] = [
        r
        for r in runs_of(live_stack, "continuous-training")
        if r.parameters["params"]["data"].endswith("/concept_drift.csv")
    ]
    with get_client(sync_client=True) as client:
        subflows = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run.id]))
        )
        run_ids = [run.id, *(subflow.id for subflow in subflows)]
        artifacts = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=run_ids)))
    name = live_stack.cfg.registry.model_name
    by_key = {artifact.key: artifact for artifact in artifacts}
    assert {f"{name}-validation", f"{name}-drift", f"{name}-scoring", f"{name}-gate"} <= set(by_key)

    def table(key: str) -> list[dict]:
        data = by_key[key].data
        return json.loads(data) if isinstance(data, str) else data

    assert by_key[f"{name}-validation"].type == "table"
    assert all(row["passed"] for row in table(f"{name}-validation"))
    drift = by_key[f"{name}-drift"]
    drifted = {row["column"] for row in table(f"{name}-drift") if row["drifted"]}
    assert set(live_stack.cfg.dataset.features) <= {row["column"] for row in table(f"{name}-drift")}
    assert drifted and "DRIFT" in drift.description
    assert "[Evidently report](" in drift.description and "[MLflow monitoring run](" in drift.description
    gate = by_key[f"{name}-gate"].data
    assert "## Gate: challenger v3 **promoted**" in gate and "| roc_auc (primary) |" in gate and "champion (v1)" in gate
    assert f"[model version v3]({live_stack.tracking_uri}/#/models/{name}/versions/3)" in gate
    assert "[MLflow training run](" in gate
    assert "Scored **3000** rows of `concept_drift.csv` with v1" in by_key[f"{name}-scoring"].data


def test_simultaneous_triggers_run_one_at_a_time(live_stack: Stack):
    drop(live_stack, "stable_a")
    drop(live_stack, "stable_b")
    race = {"config": str(live_stack.config_path), "data": [str(live_stack.data["reference"])]}
    trainings = [start_run(live_stack, "training", {**race, "reason": reason}) for reason in ("race a", "race b")]
    wait_for(lambda: len(runs_of(live_stack, "continuous-training")) == 3, 60, "both files to start a run")
    wait_for(lambda: finished(runs_of(live_stack, "continuous-training")), 400, "the triggered runs to finish")
    for training in trainings:
        wait_until_final(training.id, timeout=400)
    for flow in ("continuous-training", "training"):
        finished_runs = [r for r in runs_of(live_stack, flow) if r.start_time is not None]
        assert all(r.state.is_completed() for r in finished_runs), [r.state.message for r in finished_runs]
        spans = sorted((r.start_time, r.end_time) for r in finished_runs)
        overlaps = [(a, b) for a, b in zip(spans, spans[1:], strict=False) if b[0] < a[1] - timedelta(seconds=0)]
        assert not overlaps, f"{flow} runs overlapped: {overlaps}"


def test_a_bad_file_fails_its_run_and_is_quarantined(live_stack: Stack):
    drop(live_stack, "faulty")
    run = wait_for(
        lambda: [
            r
            for r in runs_of(live_stack, "continuous-training")
            if r.parameters["params"]["data"].endswith("faulty.csv")
        ],
        60,
        "the bad file's run",
    )[0]
    done = wait_until_final(run.id)
    assert done.state.is_failed() and "unknown-plan" in done.state.message
    assert any((path / "faulty.csv").exists() for path in live_stack.cfg.folders.quarantine.iterdir())


def test_the_registry_on_the_server_holds_every_version_with_its_gate_and_one_champion(live_stack: Stack):
    client = MlflowClient(live_stack.tracking_uri)
    name = live_stack.cfg.registry.model_name
    versions = {str(v.version): v for v in client.search_model_versions(f"name = '{name}'")}
    verdicts = {number: version.tags["driftline.gate.verdict"] for number, version in versions.items()}
    assert {"1": "promoted", "2": "refused", "3": "promoted"}.items() <= verdicts.items()
    assert versions["3"].tags["driftline.trigger"] == "drift in concept_drift.csv"
    assert set(verdicts.values()) == {"promoted", "refused"}  # no version left without a gate decision
    # Whatever the races did: champion is the last version promoted, previous the one promoted before it.
    promoted = sorted(
        (v for v in versions if verdicts[v] == "promoted"), key=lambda v: versions[v].tags["driftline.gate.decided_at"]
    )
    held = aliases(live_stack)
    assert (held["champion"], held["previous"]) == (promoted[-1], promoted[-2])
    assert client.get_run(versions["3"].run_id).data.tags["driftline.config_fingerprint"]


def test_the_webhook_received_the_notifications(live_stack: Stack):
    def subjects() -> set[str]:
        return {text.split("\n")[0] for text in live_stack.webhook.texts()}

    name = live_stack.cfg.registry.model_name
    expected = {
        f"*driftline {name}: v1 promoted*",
        f"*driftline {name}: v3 promoted*",
        f"*driftline {name}: drift detected*",
        f"*driftline {name}: gate refused v2*",
    }
    wait_for(lambda: expected <= subjects(), 60, f"notifications {expected}, got {subjects()}")
    wait_for(lambda: any("failed" in s for s in subjects()), 60, f"a failed flow run, got {subjects()}")
    failed = next(text for text in live_stack.webhook.texts() if "failed" in text.split("\n")[0])
    assert "unknown-plan" in failed


def test_the_database_password_is_in_no_log_no_command_line_and_no_client_environment(live_stack: Stack):
    root = Path(live_stack.state.root)
    password = (root / "postgres-password").read_text()
    for log in (root / "logs").glob("*.log"):
        assert password not in log.read_text(errors="replace"), f"{log.name} shows the database password"
    assert password not in (root / "state.json").read_text()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            assert password not in cmdline.read_bytes().decode(errors="replace"), f"pid {cmdline.parent.name}"
        except (FileNotFoundError, ProcessLookupError):  # ended while we looked
            continue
    # the worker hands its environment to every flow run: it must not hold either server's database URL
    for started in live_stack.state.processes:
        if started.name in ("worker", "watcher"):
            environment = Path(f"/proc/{started.pid}/environ").read_bytes().decode(errors="replace")
            assert password not in environment, f"{started.name}'s environment holds the database password"
