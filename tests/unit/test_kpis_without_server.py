"""`driftline kpis` without a Prefect server: training runs from driftline's own record of them, no server started."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED, temporary_settings

from driftline.steps import kpi_sources
from driftline.tasks.kpis import gather_kpis

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def no_prefect_server():
    """No API named and none may be started: any Prefect client call fails ("No Prefect API URL provided")."""
    return temporary_settings(updates={PREFECT_SERVER_EPHEMERAL_ENABLED: False}, restore_defaults={PREFECT_API_URL})


def test_the_record_counts_each_training_run_of_this_config_once_by_its_last_state(cfg, config_factory, tmp_path):
    config = str(cfg.source)
    kpi_sources.record_run("training", config, "run-1", "COMPLETED", T0)
    kpi_sources.record_run("training", config, "run-2", "CRASHED", T0)
    kpi_sources.record_run("training", config, "run-2", "FAILED", T0)  # the same run recorded again: counted once
    kpi_sources.record_run("training", config, "run-3", "FAILED", T0)
    kpi_sources.record_run("continuous-training", config, "run-4", "COMPLETED", T0)  # another flow
    other = tmp_path / "other.yaml"
    other.write_text(cfg.source.read_text())  # another config in the same workspace
    kpi_sources.record_run("training", str(other), "run-5", "COMPLETED", T0)
    with kpi_sources.run_record(cfg).open("a") as record:
        record.write('{"flow": "training", "flow_run_id": "run-6", "con')  # cut short by a crash

    runs = kpi_sources.recorded_training_runs(cfg)
    assert sorted(run.succeeded for run in runs) == [False, False, True]
    assert {run.started_at for run in runs} == {T0}


def test_kpis_without_a_prefect_server_come_from_the_record_else_mlflow_and_start_none(cfg):
    with no_prefect_server():  # a workspace from before the record: MLflow's training runs, and it says so
        before = gather_kpis(cfg)
    assert (before.training_runs, before.training_success_rate) == (0, None)
    assert before.training_runs_source.startswith("MLflow training runs")

    for run_id, state in (("a", "COMPLETED"), ("b", "FAILED"), ("c", "COMPLETED"), ("d", "COMPLETED")):
        kpi_sources.record_run("training", str(cfg.source), run_id, state, T0)
    with no_prefect_server():
        measured = gather_kpis(cfg)
    assert (measured.training_runs, measured.training_success_rate) == (4, 0.75)
    assert measured.training_runs_source == kpi_sources.RECORD_SOURCE
