"""Batch scoring through Prefect, streamed in chunks and on a Dask cluster, with MLflow on SQLite."""

import shutil

import pandas as pd
import pytest

from driftline.config import load_config
from driftline.data import prediction_log
from driftline.data.demo import START, make_frame
from driftline.data.loading import load_batch
from driftline.errors import DataRejected
from driftline.flows.batch_scoring import batch_scoring
from driftline.flows.params import ScoringParams, TrainParams
from driftline.flows.training import training
from driftline.registry import Registry, registry_folders
from driftline.serving.batch_scoring import SCORED_AT
from driftline.validation.expectations import build_expectations, validate_frame

# Two thread workers: a cluster of processes would start two more Pythons on a shared 2-core machine for the same
# code path (the partitions, the registry load on the worker, the join); scoring.dask_processes is true by default.
DASK = {"chunk_rows": 300, "engine": "dask", "dask_workers": 2, "dask_processes": False, "partitions": 3}


@pytest.fixture
def champion(config_factory, demo_files):
    path = config_factory(scoring={"chunk_rows": 300})
    outcome = training(TrainParams(config=str(path), data=[str(demo_files["reference"])], reason="initial"))
    assert outcome.champion_version == "1"
    return outcome


def test_batch_scoring_on_dask_writes_what_a_single_process_writes(config_factory, champion, demo_files, tmp_path):
    local_config = config_factory(scoring={"chunk_rows": 300})
    local = batch_scoring(
        ScoringParams(
            config=str(local_config), data=str(demo_files["stable"]), output=str(tmp_path / "out" / "local.parquet")
        )
    )
    # The same content by the same version is logged once: set the local run's log aside so the Dask run logs its own.
    [local_log_file] = prediction_log.log_files(registry_folders(load_config(local_config)).prediction_log)
    local_log = pd.read_parquet(local_log_file).drop(columns=SCORED_AT)
    local_log_file.unlink()
    dask_config = config_factory(scoring=DASK)
    on_dask = batch_scoring(
        ScoringParams(
            config=str(dask_config), data=str(demo_files["stable"]), output=str(tmp_path / "out" / "dask.parquet")
        )
    )

    assert on_dask.scored[0].rows == local.scored[0].rows == 1000
    expected, got = (
        pd.read_parquet(tmp_path / "out" / "local.parquet"),
        pd.read_parquet(tmp_path / "out" / "dask.parquet"),
    )
    assert got[SCORED_AT].nunique() == 1  # one time per run, whichever worker scored the row
    pd.testing.assert_frame_equal(got.drop(columns=SCORED_AT), expected.drop(columns=SCORED_AT))
    logs = prediction_log.log_files(registry_folders(load_config(dask_config)).prediction_log)
    assert len(logs) == 1  # one log file per run, however many partitions
    pd.testing.assert_frame_equal(pd.read_parquet(logs[0]).drop(columns=SCORED_AT), local_log)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["dask.parquet", "local.parquet"]  # no parts left


def test_a_file_failing_in_a_middle_chunk_is_quarantined_and_nothing_is_written(config_factory, champion, tmp_path):
    cfg = load_config(config_factory(scoring={"chunk_rows": 300}))
    frame = make_frame(1200, seed=8, start=START + pd.Timedelta(days=70), id_offset=70_000)
    frame.loc[650:700, "contract"] = "lifetime"  # 4% unseen, all in the third chunk of four
    path = tmp_path / "incoming" / "middle_bad.csv"
    path.parent.mkdir()
    frame.to_csv(path, index=False)
    profile = Registry(cfg).load_champion().reference.profile
    expectations = build_expectations(cfg.dataset, cfg.validation, profile, require_target=True)
    whole_file_failures = validate_frame(load_batch(path, cfg.dataset).frame, expectations).failures
    assert whole_file_failures == [
        "column 'contract': 4.2% of values are categories unseen in training (e.g. lifetime), at most 1.0% allowed"
    ]

    with pytest.raises(DataRejected) as rejected:
        batch_scoring(ScoringParams(config=str(cfg.source), data=str(path), output=str(tmp_path / "out" / "s.csv")))

    assert rejected.value.reasons == whole_file_failures
    assert not path.exists()
    assert [p.name for p in cfg.folders.quarantine.glob("*/middle_bad.csv")] == ["middle_bad.csv"]
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    assert prediction_log.log_files(registry_folders(cfg).prediction_log) == []


def test_scheduled_run_streams_each_inbox_file_to_the_default_output_and_names_the_rejected(
    config_factory, champion, demo_files
):
    cfg = load_config(config_factory(scoring={"chunk_rows": 300}, landing={"stable_seconds": 0}))
    cfg.folders.inbox.mkdir(parents=True)
    for name in ("stable", "faulty"):
        shutil.copy(demo_files[name], cfg.folders.inbox / f"{name}.csv")

    with pytest.raises(DataRejected) as rejected:
        batch_scoring(ScoringParams(config=str(cfg.source)))

    assert "1 file(s) rejected" in str(rejected.value) and "faulty.csv" in str(rejected.value)
    scored = pd.read_parquet(cfg.folders.outputs / "stable.scored.parquet")
    assert len(scored) == 1000 and scored["customer_id"].is_unique
    assert sorted(p.name for p in (cfg.folders.inbox / "done").iterdir()) == ["stable.csv"]
    assert [p.name for p in cfg.folders.quarantine.glob("*/faulty.csv")] == ["faulty.csv"]
    assert len(prediction_log.log_files(registry_folders(cfg).prediction_log)) == 1
