"""Driftline's record of training runs: every finished run of the training flow, counted as the Prefect API counts it,
so `driftline kpis` answers without a Prefect server."""

from __future__ import annotations

import pytest
from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED, temporary_settings

from driftline.errors import DataRejected
from driftline.flows.params import TrainParams
from driftline.flows.training import training
from driftline.steps import kpi_sources
from driftline.tasks.kpis import gather_kpis


def test_a_promoted_and_a_rejected_training_are_recorded_as_the_prefect_api_counts_them(cfg, config_path, demo_files):
    training(TrainParams(config=str(config_path), data=[str(demo_files["reference"])]))
    with pytest.raises(DataRejected):  # failed before a challenger was logged: MLflow never sees this run
        training(TrainParams(config=str(config_path), data=[str(demo_files["faulty"])]))

    from_prefect = gather_kpis(cfg)
    with temporary_settings(updates={PREFECT_SERVER_EPHEMERAL_ENABLED: False}, restore_defaults={PREFECT_API_URL}):
        from_record = gather_kpis(cfg)  # no Prefect API: any client call would fail
    assert from_prefect.training_runs_source == kpi_sources.PREFECT_SOURCE
    assert from_record.training_runs_source == kpi_sources.RECORD_SOURCE
    assert (from_record.training_runs, from_record.training_success_rate) == (2, 0.5)
    assert (from_prefect.training_runs, from_prefect.training_success_rate) == (2, 0.5)
