"""One process, two registries: each keeps its URI on its own MLflow client, so two models trained, registered,
promoted and loaded at the same time in two threads never cross (runs, versions, aliases, artifacts)."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from testkit.configs import write_config

from driftline.config import TRACKING_URI_ENV, DriftlineConfig, load_config
from driftline.data import loading
from driftline.evaluation.gate import decide
from driftline.registry import CHAMPION, SKOPS_FILE, Registry
from driftline.registry.refs import CONFIG_ARTIFACT
from driftline.training.lineage import DataSource, collect_lineage
from driftline.training.train import TrainedModel, train_model

ROUNDS = 3


def one_model(tmp_path: Path, name: str, data: Path) -> tuple[DriftlineConfig, TrainedModel, loading.DataBatch]:
    (tmp_path / name).mkdir()
    cfg = load_config(write_config(tmp_path / name, registry={"model_name": name}))
    batch = loading.load_batch(data, cfg.dataset)
    return cfg, train_model(batch.frame, cfg), batch


def rounds(cfg: DriftlineConfig, trained: TrainedModel, batch: loading.DataBatch, turns: threading.Barrier) -> list:
    """ROUNDS times: register a version, pass its gate, promote it, load the champion and score with it."""
    source = DataSource(batch.fingerprint, batch.rows, batch.name, batch.path.name)
    scored = []
    for _ in range(ROUNDS):
        turns.wait()  # both threads in the same round at once
        registry = Registry(cfg)
        ref = registry.log_candidate(trained, collect_lineage(cfg, [source]), "two registries")
        registry.record_gate(ref, decide(cfg, {cfg.gate.metric: 0.9}, None, None))
        registry.promote(ref)
        champion = Registry(cfg).load_champion()
        scored.append((champion.ref.version, champion.model.predict_proba(batch.frame.head(200))[:, 1]))
    return scored


@pytest.mark.slow  # two trainings in parallel threads: make test-slow
def test_two_registries_in_two_threads_keep_runs_versions_aliases_and_artifacts_apart(tmp_path, demo_files):
    assert TRACKING_URI_ENV not in os.environ
    global_uri = mlflow.get_tracking_uri()
    models = {
        "churn-east": one_model(tmp_path, "churn-east", demo_files["reference"]),
        "churn-west": one_model(tmp_path, "churn-west", demo_files["concept_drift"]),
    }
    turns = threading.Barrier(len(models))
    with ThreadPoolExecutor(len(models)) as pool:
        running = {name: pool.submit(rounds, *model, turns) for name, model in models.items()}
        scored = {name: future.result() for name, future in running.items()}

    for name, (cfg, trained, batch) in models.items():
        other = next(n for n in models if n != name)
        store = MlflowClient(cfg.tracking_uri)
        workspace = (tmp_path / name).resolve()
        assert cfg.tracking_uri == f"sqlite:///{workspace / 'workspace' / 'mlflow.db'}"
        assert [m.name for m in store.search_registered_models()] == [name]
        versions = store.search_model_versions(f"name = '{name}'")
        assert sorted(int(v.version) for v in versions) == list(range(1, ROUNDS + 1))
        assert str(store.get_model_version_by_alias(name, CHAMPION).version) == str(ROUNDS)
        experiments = store.search_experiments()  # MLflow's "Default" (empty) in every store, and the model's own
        assert sorted(e.name for e in experiments) == ["Default", name, f"{name}-audit"]
        runs = store.search_runs([e.experiment_id for e in experiments], max_results=1000)
        training = [run for run in runs if run.info.run_name.startswith("train-")]
        assert {run.info.run_name for run in training} == {f"train-{name}"} and len(training) == ROUNDS
        assert all(Path(run.info.artifact_uri.removeprefix("file://")).is_relative_to(workspace) for run in runs)
        assert all(Path(v.source.removeprefix("file://")).is_relative_to(workspace) for v in versions)
        assert {v.run_id for v in versions} == {run.info.run_id for run in training}
        recorded = {Registry(cfg).run_text(run.info.run_id, CONFIG_ARTIFACT) for run in training}
        assert recorded == {cfg.source_text}  # each run's own config, read through its own store
        assert len(list((workspace / "workspace" / "mlartifacts").rglob(SKOPS_FILE))) == ROUNDS
        assert not list((tmp_path / other).rglob(f"*{name}*")), f"{name}'s files in {other}'s workspace"
        # each champion loaded is this model (the two were trained on different data), in every round
        expected = trained.model.predict_proba(batch.frame.head(200))[:, 1]
        assert [version for version, _ in scored[name]] == [str(n) for n in range(1, ROUNDS + 1)]
        assert all(np.allclose(probabilities, expected) for _, probabilities in scored[name])
    east, west = (models[name][1].model.predict_proba(models["churn-east"][2].frame.head(200)) for name in models)
    assert not np.allclose(east, west)  # otherwise a crossed champion could not be seen
    assert TRACKING_URI_ENV not in os.environ and mlflow.get_tracking_uri() == global_uri
